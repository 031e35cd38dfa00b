public import ByteIdentity
public import EventLog
public import Projections

/// Folds the log into transaction states (and KV records) in memory, without touching the view: the audit's
/// independent re-derivation, and point-in-time state.
public enum Replay {
    /// Every transaction's state as of record `seq` (inclusive), by gid. Checks every record on
    /// the way (checksum, chain); `progress` is called now and then with the seq reached.
    public static func states(
        of log: EventLog, through seq: UInt64 = .max, progress: ((UInt64) -> Void)? = nil
    ) throws -> [ExactString: TransactionState] {
        try fold(of: log, through: seq, progress: progress).transactions
    }

    /// Every transaction's state and every KV record (by stream id) as of record `seq`.
    public static func fold(
        of log: EventLog, through seq: UInt64 = .max, progress: ((UInt64) -> Void)? = nil
    ) throws -> (transactions: [ExactString: TransactionState], kv: [ExactString: KVState]) {
        var states = [ExactString: TransactionState]()
        var records = [ExactString: KVState]()
        try log.forEachRecord(through: seq) { record in
            let event = try RecordedEvent(record)
            let stream = event.gid.exact
            if KVStream.isKV(event.gid) {
                records[stream] = applyKV(event, to: records[stream])
            } else {
                states[stream] = apply(event, to: states[stream])
            }
            if record.seq & 0xFFFF == 0 { progress?(record.seq) }
            return true
        }
        return (states, records)
    }

    /// The seq of the last record appended at or before `time` (µs); 0 when none was.
    /// Records are appended in time order, so this is a binary search over seqs.
    public static func lastSeq(of log: EventLog, atOrBefore time: UInt64) throws -> UInt64 {
        var low: UInt64 = 0
        var high = try log.lastSeq()
        while low < high {
            let middle = low + (high - low + 1) / 2
            guard let record = try log.record(middle) else { break }
            if record.timestamp <= time { low = middle } else { high = middle - 1 }
        }
        return low
    }
}
