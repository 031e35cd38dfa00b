public import ByteIdentity
public import EventLog
public import Projections
import SwiftProtobuf

/// The materialized view of every transaction's current state, stored in the log's LMDB environment
/// and updated in the same write transaction as the events (it is the log's `LogProjector`).
///
/// Databases: `view.transactions` gid → state; `view.by_status` status ‖ create time ‖ gid;
/// `view.due` due time ‖ gid (non-terminal, scheduled transactions only); `view.created`
/// create time ‖ gid; `view.kv` stream id (`kv/<cat>/<key>`) → dtm's KV record;
/// `view.meta` the checkpoint. Only what a batch touches is held in memory.
public final class TransactionView: LogProjector {
    let environment: LMDBEnvironment
    let transactions: LMDBDatabase
    let byStatus: LMDBDatabase
    let due: LMDBDatabase
    let created: LMDBDatabase
    let kv: LMDBDatabase
    let meta: LMDBDatabase

    private static let checkpointKey = Array("checkpoint".utf8)

    /// Opens (or creates) the view's databases in `environment`.
    public init(environment: LMDBEnvironment) throws {
        self.environment = environment
        transactions = try environment.openDatabase("view.transactions")
        byStatus = try environment.openDatabase("view.by_status")
        due = try environment.openDatabase("view.due")
        created = try environment.openDatabase("view.created")
        kv = try environment.openDatabase("view.kv")
        meta = try environment.openDatabase("view.meta")
    }

    /// Every database of the view, for tools that compare or dump it.
    public var databases: [LMDBDatabase] { [transactions, byStatus, due, created, kv, meta] }

    // MARK: LogProjector

    /// Decodes the records' events (off the writer thread during a rebuild or catch-up).
    public func prepare(_ records: [LogRecord]) throws -> (any Sendable)? {
        try records.map(RecordedEvent.init)
    }

    public func project(_ records: [LogRecord], prepared: (any Sendable)?, in txn: borrowing LMDBWriteTransaction) throws {
        guard let last = records.last else { return }
        let events = try (prepared as? [RecordedEvent]) ?? records.map(RecordedEvent.init)
        // Per touched gid: the index keys its stored state had, and its state now. Keeping only
        // the old keys (not the old state) leaves each state uniquely referenced, so `apply`
        // mutates it in place instead of copying it per event.
        var touched = [ExactString: (old: IndexKeys?, state: TransactionState?)]()
        var order = [ExactString]()
        var records = [ExactString: KVState]()
        for event in events {
            if KVStream.isKV(event.gid) {
                let stream = event.gid.exact
                let before = try records[stream] ?? txn.withValue(kv, key: Array(event.gid.utf8)) { try $0.map { try Self.decodeKV($0, stream: event.gid) } }
                if let after = applyKV(event, to: before) { records[stream] = after }
                continue
            }
            var entry: (old: IndexKeys?, state: TransactionState?)
            let gid = event.gid.exact
            if let seen = touched.removeValue(forKey: gid) {
                entry = seen
            } else {
                let stored = try Self.load(event.gid, from: transactions, in: txn)
                entry = (stored.map(IndexKeys.init), stored)
                order.append(gid)
            }
            entry.state = apply(event, to: entry.state.take())
            touched[gid] = entry
        }
        for gid in order {
            guard let change = touched[gid], let state = change.state else { continue }
            try store(state, replacing: change.old, in: txn)
        }
        for record in records.values {
            var options = BinaryEncodingOptions()
            options.useDeterministicOrdering = true
            try txn.put(kv, key: Array(KVStream.id(cat: record.cat, key: record.key).utf8), value: try record.serializedBytes(options: options) as [UInt8])
        }
        try txn.put(meta, key: Self.checkpointKey, value: sequenceKey(last.seq))
    }

    public func checkpoint(in txn: borrowing LMDBWriteTransaction) throws -> UInt64 {
        try txn.withValue(meta, key: Self.checkpointKey) { $0.flatMap(sequence(fromKey:)) } ?? 0
    }

    public func reset(in txn: borrowing LMDBWriteTransaction) throws {
        for database in databases { try txn.empty(database) }
    }

    /// The index entries a stored state has.
    struct IndexKeys {
        let status: [UInt8]
        let due: [UInt8]?

        init(_ state: TransactionState) {
            status = TransactionView.statusKey(state)
            due = TransactionView.dueKey(state)
        }
    }

    private func store(_ state: TransactionState, replacing old: IndexKeys?, in txn: borrowing LMDBWriteTransaction) throws {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = try state.serializedBytes(options: options)
        try txn.put(transactions, key: Array(state.gid.utf8), value: bytes)
        let empty = [UInt8]()
        let new = IndexKeys(state)
        if let old, old.status != new.status { try txn.delete(byStatus, key: old.status) }
        if old?.status != new.status { try txn.put(byStatus, key: new.status, value: empty) }
        if let oldDue = old?.due, oldDue != new.due { try txn.delete(due, key: oldDue) }
        if let newDue = new.due, old?.due != newDue { try txn.put(due, key: newDue, value: empty) }
        if old == nil { try txn.put(created, key: Self.timeKey(state.createTimeUs, state.gid), value: empty) }
    }

    static func load(_ gid: String, from database: LMDBDatabase, in txn: borrowing LMDBWriteTransaction) throws -> TransactionState? {
        try txn.withValue(database, key: Array(gid.utf8)) { try $0.map { try decodeState($0, gid: gid) } }
    }

    static func decodeKV(_ bytes: UnsafeRawBufferPointer, stream: String) throws -> KVState {
        do {
            return try KVState(serializedBytes: Array(bytes))
        } catch {
            throw ViewError.damagedState(gid: stream, reason: "\(error)")
        }
    }

    static func decodeState(_ bytes: UnsafeRawBufferPointer, gid: String) throws -> TransactionState {
        do {
            return try TransactionState(serializedBytes: Array(bytes))
        } catch {
            throw ViewError.damagedState(gid: gid, reason: "\(error)")
        }
    }

    static func statusKey(_ state: TransactionState) -> [UInt8] {
        [UInt8(clamping: state.status.rawValue)] + timeKey(state.createTimeUs, state.gid)
    }

    static func dueKey(_ state: TransactionState) -> [UInt8]? {
        guard !state.status.isTerminal, state.nextDueUs > 0 else { return nil }
        return timeKey(state.nextDueUs, state.gid)
    }

    static func timeKey(_ time: Int64, _ gid: String) -> [UInt8] {
        var key = sequenceKey(UInt64(max(time, 0)))
        key.append(contentsOf: gid.utf8)
        return key
    }

    // MARK: Queries

    /// The seq of the last event the view reflects.
    public func checkpoint() throws -> UInt64 {
        try environment.withReadTransaction { txn in
            try txn.withValue(meta, key: Self.checkpointKey) { $0.flatMap(sequence(fromKey:)) } ?? 0
        }
    }

    /// The current state of one transaction; nil when the gid is unknown.
    public func transaction(_ gid: String) throws -> TransactionState? {
        guard !gid.isEmpty, gid.utf8.count <= LogRecord.maxStreamIDBytes else { return nil }
        return try environment.withReadTransaction { txn in
            try txn.withValue(transactions, key: Array(gid.utf8)) { try $0.map { try Self.decodeState($0, gid: gid) } }
        }
    }

    /// Gids of non-terminal transactions due at or before `time` (µs), earliest first.
    public func dueTransactions(atOrBefore time: Int64, limit: Int = 1000) throws -> [(gid: String, dueUs: Int64)] {
        try environment.withReadTransaction { txn in
            var found = [(gid: String, dueUs: Int64)]()
            try txn.scan(due) { key, _ in
                guard let entry = Self.splitTimeKey(key), entry.time <= time, found.count < limit else { return false }
                found.append((entry.gid, entry.time))
                return true
            }
            return found
        }
    }

    /// Gids of non-terminal transactions due later than `time` (µs), earliest first.
    public func scheduledTransactions(after time: Int64, limit: Int) throws -> [(gid: String, dueUs: Int64)] {
        guard limit > 0, time < .max else { return [] }
        return try environment.withReadTransaction { txn in
            var found = [(gid: String, dueUs: Int64)]()
            try txn.scan(due, from: sequenceKey(UInt64(max(time + 1, 0)))) { key, _ in
                guard let entry = Self.splitTimeKey(key), found.count < limit else { return false }
                found.append((entry.gid, entry.time))
                return true
            }
            return found
        }
    }

    /// The KV record of stream `stream` (`KVStream.id`), deleted ones included (as tombstones);
    /// nil when never written.
    public func kvRecord(stream: String) throws -> KVState? {
        guard stream.utf8.count <= LogRecord.maxStreamIDBytes else { return nil }
        return try environment.withReadTransaction { txn in
            try txn.withValue(kv, key: Array(stream.utf8)) { try $0.map { try Self.decodeKV($0, stream: stream) } }
        }
    }

    /// The live KV records of `cat` in key order (by bytes), those after key `position`, at most `limit`.
    public func kvRecords(cat: String, after position: String?, limit: Int) throws -> [KVState] {
        try environment.withReadTransaction { txn in
            var found = [KVState]()
            let prefix = Array(KVStream.id(cat: cat, key: "").utf8)
            let after = position.map { Array(KVStream.id(cat: cat, key: $0).utf8) }
            try txn.scan(kv, from: after ?? prefix) { key, value in
                guard key.starts(with: prefix), found.count < limit else { return false }
                if let after, key.elementsEqual(after) { return true }
                let record = try Self.decodeKV(value, stream: String(decoding: key, as: UTF8.self))
                // A category with a `/` shares its prefix with another's: keep only this one's.
                if !record.deleted, record.cat.hasSameBytes(as: cat) { found.append(record) }
                return true
            }
            return found
        }
    }

    /// Gids of transactions in `status`, oldest first.
    public func gids(withStatus status: TransactionStatus, limit: Int = 1000) throws -> [String] {
        try environment.withReadTransaction { txn in
            var found = [String]()
            let prefix = UInt8(clamping: status.rawValue)
            try txn.scan(byStatus, from: [prefix]) { key, _ in
                guard key.first == prefix, found.count < limit,
                      let entry = Self.splitTimeKey(UnsafeRawBufferPointer(rebasing: key.dropFirst()))
                else { return false }
                found.append(entry.gid)
                return true
            }
            return found
        }
    }

    /// How many transactions have each status (those with none left out), each counted up to
    /// `limit`, in one read transaction; only the status index's keys are walked, no gid decoded.
    public func countsByStatus(upTo limit: Int) throws -> [TransactionStatus: Int] {
        try environment.withReadTransaction { txn in
            var counts = [TransactionStatus: Int]()
            for status in TransactionStatus.allCases where status != .unspecified {
                let prefix = UInt8(clamping: status.rawValue)
                var count = 0
                try txn.scan(byStatus, from: [prefix]) { key, _ in
                    guard key.first == prefix, count < limit else { return false }
                    count += 1
                    return true
                }
                if count > 0 { counts[status] = count }
            }
            return counts
        }
    }

    /// Transactions newest first by create time, those `include` accepts; `before` is the `next`
    /// position a previous page returned (nil when there are no more).
    public func newestTransactions(
        before position: [UInt8]? = nil, limit: Int = 100, matching include: (TransactionState) -> Bool = { _ in true }
    ) throws -> (states: [TransactionState], next: [UInt8]?) {
        try environment.withReadTransaction { txn in
            var states = [TransactionState]()
            var lastKey: [UInt8]? = nil
            var more = false
            try txn.scanBackward(created, from: position) { key, _ in
                if let position, key.elementsEqual(position) { return true }
                guard states.count < limit else {
                    more = true
                    return false
                }
                guard let entry = Self.splitTimeKey(key) else { return true }
                if let state = try txn.withValue(transactions, key: Array(entry.gid.utf8), { try $0.map { try Self.decodeState($0, gid: entry.gid) } }),
                   include(state) {
                    states.append(state)
                }
                lastKey = Array(key)
                return true
            }
            return (states, more ? lastKey : nil)
        }
    }

    /// The whole view as one consistent snapshot: its checkpoint, every state, every KV record (by
    /// stream id, tombstones included), and what is wrong with its indexes (entries missing or
    /// extra for the states they index).
    public func snapshot() throws -> (
        checkpoint: UInt64, states: [ExactString: TransactionState], kv: [ExactString: KVState], indexProblems: [String]
    ) {
        try environment.withReadTransaction { txn in
            let checkpoint = try txn.withValue(meta, key: Self.checkpointKey) { $0.flatMap(sequence(fromKey:)) } ?? 0
            var states = [ExactString: TransactionState]()
            try txn.scan(transactions) { key, value in
                let gid = String(decoding: key, as: UTF8.self)
                states[gid.exact] = try Self.decodeState(value, gid: gid)
                return true
            }
            var records = [ExactString: KVState]()
            try txn.scan(kv) { _, value in
                let record = try Self.decodeKV(value, stream: "view.kv")
                records[KVStream.id(cat: record.cat, key: record.key).exact] = record
                return true
            }
            var problems = [String]()
            for (name, database, keyOf) in [
                ("status", byStatus, { (state: TransactionState) in Optional(Self.statusKey(state)) }),
                ("due time", due, Self.dueKey),
                ("create time", created, { Optional(Self.timeKey($0.createTimeUs, $0.gid)) }),
            ] as [(String, LMDBDatabase, (TransactionState) -> [UInt8]?)] {
                var stored = Set<[UInt8]>()
                try txn.scan(database) { key, _ in
                    stored.insert(Array(key))
                    return true
                }
                let expected = Set(states.values.compactMap(keyOf))
                if stored != expected {
                    problems.append("the \(name) index has \(stored.subtracting(expected).count) extra and \(expected.subtracting(stored).count) missing entries")
                }
            }
            return (checkpoint, states, records, problems)
        }
    }

    /// The number of transactions in the view.
    public func count() throws -> Int {
        try environment.withReadTransaction { try $0.count(transactions) }
    }

    static func splitTimeKey(_ key: UnsafeRawBufferPointer) -> (time: Int64, gid: String)? {
        guard key.count > 8, let time = sequence(fromKey: UnsafeRawBufferPointer(rebasing: key[0..<8])) else { return nil }
        return (Int64(clamping: time), String(decoding: key[8...], as: UTF8.self))
    }
}

/// Damage found in the materialized view (which can always be rebuilt from the log).
public enum ViewError: Error, Equatable, CustomStringConvertible {
    /// The stored state of a transaction cannot be decoded.
    case damagedState(gid: String, reason: String)

    public var description: String {
        switch self {
        case let .damagedState(gid, reason):
            return "the stored state of transaction \(gid) is damaged (\(reason)); run `dtmctl rebuild`"
        }
    }
}
