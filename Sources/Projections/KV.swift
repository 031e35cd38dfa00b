import ByteIdentity

/// The log streams of dtm's KV records: `kv/<cat>/<key>`. Gids cannot contain `/`, so no
/// transaction's stream is ever one of these.
public enum KVStream {
    static let prefix = "kv/"

    /// The stream of record `key` in category `cat`.
    public static func id(cat: String, key: String) -> String {
        "\(prefix)\(cat)/\(key)"
    }

    /// Whether `streamID` is a KV record's stream rather than a transaction's.
    public static func isKV(_ streamID: String) -> Bool {
        streamID.utf8.starts(with: prefix.utf8)
    }
}

/// Folds one event of a KV stream into the record's state: pure, and the only way a KV record
/// changes (the view, a rebuild and `dtmctl verify` all go through it). Events other than
/// `kv_changed`, or for another stream, leave the state as it was.
public func applyKV(_ recorded: RecordedEvent, to state: consuming KVState?) -> KVState? {
    guard case let .kvChanged(change) = recorded.event.kind,
          recorded.gid.hasSameBytes(as: KVStream.id(cat: change.cat, key: change.key)) else { return state }
    var record = state ?? KVState.with {
        $0.cat = change.cat
        $0.key = change.key
        $0.deleted = true
    }
    if change.deleted {
        record.deleted = true
    } else {
        if record.deleted {
            // Created (again): dtm's version and id start over.
            record.version = 0
            record.id = recorded.seq
            record.createTimeUs = recorded.time
        }
        record.deleted = false
        record.value = change.value
        record.version = record.version == .max ? .max : record.version + 1
    }
    record.updateTimeUs = recorded.time
    record.lastSeq = recorded.seq
    record.streamVersion = record.streamVersion == .max ? .max : record.streamVersion + 1
    return record
}

extension TransactionEvent {
    /// A `kv_changed` event.
    public static func kvChanged(_ body: KVChanged) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .kvChanged(body) }
    }
}
