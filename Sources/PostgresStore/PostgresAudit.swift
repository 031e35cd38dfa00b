import ByteIdentity
import Crypto
import DTMWire
public import Foundation
import PostgresNIO
public import Projections
import SwiftProtobuf
public import TransactionStore

/// An event row as stored: the event, its stream's own number and its hash chain.
public struct StoredEvent: Sendable {
    public let recorded: RecordedEvent
    public let type: String
    public let streamSeq: Int64
    public let previousHash: Data
    public let hash: Data
}

/// What a whole-store verify found.
public struct PostgresVerification: Sendable {
    /// Event rows checked.
    public var events = 0
    /// Transactions and KV records whose state row was compared with the fold of their events.
    public var transactions = 0
    public var kvRecords = 0
    /// Writer batches whose chains and coverage were checked.
    public var batches = 0
    public var problems = [String]()
}

/// Reading the store for audits (dtmctl): rows with their hashes, and a verify of every stream.
extension PostgresTransactionStore {
    /// Every event row of `stream` in order.
    public func storedEvents(ofStream stream: String) async throws -> [StoredEvent] {
        try await storage {
            try await storedEvents("WHERE stream = \(Data(stream.utf8)) ORDER BY stream_seq")
        }
    }

    /// The stream's rows with their hashes, checked as `verify` checks every stream: numbering,
    /// the stream's hash chain, each row's hash, and the state row against the fold.
    public func auditedHistory(of gid: String) async throws -> AuditedHistory {
        let events = try await storedEvents(ofStream: gid)
        let row = try await storage { () -> (version: Int64, lastHash: Data, state: Data)? in
            let rows = try await client.query(
                "SELECT version, last_hash, state FROM \(unescaped: prefix)transactions WHERE gid = \(Data(gid.utf8))", logger: logger)
            for try await row in rows.decode((Int64, Data, Data).self) { return (row.0, row.1, row.2) }
            return nil
        }
        let problems = events.isEmpty ? [] : check(events, stream: Data(gid.utf8), name: gid, row: row, isKV: false)
        return AuditedHistory(
            events: events.map(\.recorded), hashes: events.map { [UInt8]($0.hash) }, problems: problems,
            checked: "each event's hash and number, the transaction's own hash chain, and its state row against its events")
    }

    /// Up to `limit` event rows after global position `seq`, in global order.
    public func storedEvents(after seq: UInt64, limit: Int) async throws -> [StoredEvent] {
        try await storage {
            try await storedEvents("WHERE seq > \(Int64(clamping: seq)) ORDER BY seq LIMIT \(max(limit, 0))")
        }
    }

    /// The highest global position, 0 for an empty store.
    public func lastSeq() async throws -> UInt64 {
        try await storage {
            let rows = try await client.query("SELECT coalesce(max(seq), 0) FROM \(unescaped: prefix)events", logger: logger)
            for try await seq in rows.decode(Int64.self) { return UInt64(clamping: seq) }
            return 0
        }
    }

    /// The highest global position of an event appended at or before `time` (µs), 0 if none.
    public func lastSeq(atOrBefore time: Int64) async throws -> UInt64 {
        try await storage {
            let rows = try await client.query(
                "SELECT coalesce(max(seq), 0) FROM \(unescaped: prefix)events WHERE time_us <= \(time)", logger: logger)
            for try await seq in rows.decode(Int64.self) { return UInt64(clamping: seq) }
            return 0
        }
    }

    /// Counts for `dtmctl stats`: events, their first and last times (µs), transactions by status.
    public func counts() async throws -> (events: Int64, firstUs: Int64, lastUs: Int64, byStatus: [TransactionStatus: Int64]) {
        try await storage {
            var events: Int64 = 0, first: Int64 = 0, last: Int64 = 0
            let totals = try await client.query(
                "SELECT count(*), coalesce(min(time_us), 0), coalesce(max(time_us), 0) FROM \(unescaped: prefix)events", logger: logger)
            for try await (count, minimum, maximum) in totals.decode((Int64, Int64, Int64).self) { (events, first, last) = (count, minimum, maximum) }
            var byStatus = [TransactionStatus: Int64]()
            let statuses = try await client.query("SELECT status, count(*) FROM \(unescaped: prefix)transactions GROUP BY status", logger: logger)
            for try await (status, count) in statuses.decode((Int16, Int64).self) {
                byStatus[TransactionStatus(rawValue: Int(status)) ?? .UNRECOGNIZED(Int(status)), default: 0] += count
            }
            return (events, first, last, byStatus)
        }
    }

    private func storedEvents(_ condition: PostgresQuery) async throws -> [StoredEvent] {
        var query: PostgresQuery = "SELECT seq, time_us, stream, stream_seq, type, payload, previous_hash, hash FROM \(unescaped: prefix)events "
        query.sql += condition.sql
        query.binds = condition.binds
        let rows = try await client.query(query, logger: logger)
        var events = [StoredEvent]()
        for try await (seq, time, stream, number, type, payload, previous, hash) in rows.decode((Int64, Int64, Data, Int64, String, Data, Data, Data).self) {
            let recorded = try Self.recorded(seq: seq, time: time, stream: String(decoding: stream, as: UTF8.self), type: type, payload: payload)
            events.append(StoredEvent(recorded: recorded, type: type, streamSeq: number, previousHash: previous, hash: hash))
        }
        return events
    }

    /// Checks every stream: its rows are numbered 1, 2, 3…; each row's hash is the SHA-256 of its
    /// content chained to the previous row's (so no row was changed, inserted or removed inside a
    /// stream); its state row holds its last hash and version and equals the fold of its events
    /// with the same `apply` (so no tail was cut and no state was edited); no state row lacks
    /// events. `audit` sees each transaction's events (e.g. to re-derive its decisions) and
    /// returns its problems; `progress` is called with the events checked so far.
    public func verify(
        audit: ([RecordedEvent]) -> [String], progress: (Int) -> Void
    ) async throws -> PostgresVerification {
        try await storage {
            var result = PostgresVerification()
            var stateRows = StateRowCursor(store: self, table: "transactions", key: "gid")
            var kvRows = StateRowCursor(store: self, table: "kv", key: "stream")
            var stream: Data?
            var events = [StoredEvent]()
            func finish() async throws {
                guard let stream, !events.isEmpty else { return }
                let name = String(decoding: stream, as: UTF8.self)
                let isKV = KVStream.isKV(name)
                var cursor = isKV ? kvRows : stateRows
                let row = try await cursor.row(for: stream) { missing in
                    result.problems.append("state row \(String(decoding: missing, as: UTF8.self)) has no events")
                }
                if isKV { kvRows = cursor } else { stateRows = cursor }
                result.problems += check(events, stream: stream, name: name, row: row, isKV: isKV)
                if isKV {
                    result.kvRecords += 1
                } else {
                    result.transactions += 1
                    result.problems += audit(events.map(\.recorded))
                }
            }
            var after: (stream: Data, number: Int64) = (Data(), 0)
            while true {
                let rows = try await client.query("""
                    SELECT seq, time_us, stream, stream_seq, type, payload, previous_hash, hash FROM \(unescaped: prefix)events
                    WHERE (stream, stream_seq) > (\(after.stream), \(after.number)) ORDER BY stream, stream_seq LIMIT 5000
                    """, logger: logger)
                var page = 0
                for try await (seq, time, name, number, type, payload, previous, hash) in rows.decode((Int64, Int64, Data, Int64, String, Data, Data, Data).self) {
                    page += 1
                    after = (name, number)
                    if name != stream {
                        try await finish()
                        stream = name
                        events.removeAll()
                    }
                    let recorded: RecordedEvent
                    do {
                        recorded = try Self.recorded(seq: seq, time: time, stream: String(decoding: name, as: UTF8.self), type: type, payload: payload)
                    } catch {
                        result.problems.append("event \(seq): \(error)")
                        continue
                    }
                    events.append(StoredEvent(recorded: recorded, type: type, streamSeq: number, previousHash: previous, hash: hash))
                }
                result.events += page
                progress(result.events)
                if page < 5000 { break }
            }
            try await finish()
            for missing in try await stateRows.rest() + kvRows.rest() {
                result.problems.append("state row \(String(decoding: missing, as: UTF8.self)) has no events")
            }
            try await verifyBatches(into: &result)
            return result
        }
    }

    /// Checks the writers' batch chains (each writer's rows numbered 1, 2, 3…, each chained to the
    /// previous one's hash) and that they cover every event exactly once with the hash each batch
    /// holds (over its events' seqs and hashes in seq order): an event, or a whole transaction,
    /// removed or added outside dtmd shows here even when its stream looks whole.
    private func verifyBatches(into result: inout PostgresVerification) async throws {
        var batches = [(writer: String, n: Int64, previous: Data, hash: Data, seqs: [Int64])]()
        var owner = [Int64: Int]()
        var after: (writer: String, n: Int64) = ("", 0)
        while true {
            let rows = try await client.query("""
                SELECT writer, n, previous_hash, hash, seqs FROM \(unescaped: prefix)batches
                WHERE (writer, n) > (\(after.writer), \(after.n)) ORDER BY writer, n LIMIT 5000
                """, logger: logger)
            var page = 0
            for try await (writer, n, previous, hash, seqs) in rows.decode((String, Int64, Data, Data, [Int64]).self) {
                page += 1
                after = (writer, n)
                let earlier = batches.last.flatMap { $0.writer == writer ? $0 : nil }
                let expected = (n: (earlier?.n ?? 0) + 1, previous: earlier?.hash ?? Data(count: 32))
                if n != expected.n {
                    result.problems.append("writer \(writer): batch \(n) follows batch \(expected.n - 1) (batches removed)")
                } else if previous != expected.previous {
                    result.problems.append("writer \(writer): batch \(n) does not chain to batch \(n - 1)")
                }
                for seq in seqs {
                    if let other = owner.updateValue(batches.count, forKey: seq) {
                        result.problems.append("event \(seq) is in two batches (\(batches[other].writer) \(batches[other].n) and \(writer) \(n))")
                    }
                }
                batches.append((writer, n, previous, hash, seqs))
            }
            if page < 5000 { break }
        }
        result.batches = batches.count
        var hashers = [Int: (hasher: SHA256, count: Int)]()
        var last: Int64 = 0
        while true {
            let rows = try await client.query(
                "SELECT seq, hash FROM \(unescaped: prefix)events WHERE seq > \(last) ORDER BY seq LIMIT 10000", logger: logger)
            var page = 0
            for try await (seq, hash) in rows.decode((Int64, Data).self) {
                page += 1
                last = seq
                guard let index = owner[seq] else {
                    result.problems.append("event \(seq) is in no writer's batch (written outside dtmd, or its batch removed)")
                    continue
                }
                var entry = hashers[index] ?? {
                    var hasher = SHA256()
                    hasher.update(data: batches[index].previous)
                    return (hasher, 0)
                }()
                withUnsafeBytes(of: seq.bigEndian) { entry.hasher.update(bufferPointer: $0) }
                entry.hasher.update(data: hash)
                entry.count += 1
                hashers[index] = entry
            }
            if page < 10000 { break }
        }
        for (index, batch) in batches.enumerated() {
            let entry = hashers[index]
            if (entry?.count ?? 0) != batch.seqs.count {
                result.problems.append("writer \(batch.writer): batch \(batch.n) lists \(batch.seqs.count) events, \(entry?.count ?? 0) are there (events removed)")
            } else if let entry, Data(entry.hasher.finalize()) != batch.hash {
                result.problems.append("writer \(batch.writer): batch \(batch.n) does not match its events' hashes")
            }
        }
    }

    /// The problems of one stream's events against its state row.
    private func check(_ events: [StoredEvent], stream: Data, name: String, row: (version: Int64, lastHash: Data, state: Data)?, isKV: Bool) -> [String] {
        var problems = [String]()
        var previous = Data(count: 32)
        for (index, event) in events.enumerated() {
            let number = Int64(index) + 1
            if event.streamSeq != number {
                problems.append("\(name): event \(event.recorded.seq) is number \(event.streamSeq) of its stream, expected \(number)")
            }
            if event.previousHash != previous {
                problems.append("\(name): event \(event.recorded.seq) does not chain to the stream's previous event")
            }
            let payload = Data((try? event.recorded.event.serializedBytes() as [UInt8]) ?? [])
            let hash = Self.hash(previous: event.previousHash, stream: stream, streamSeq: event.streamSeq, time: event.recorded.time, type: event.type, payload: payload)
            if hash != event.hash {
                problems.append("\(name): event \(event.recorded.seq) does not match its hash (changed after it was written)")
            }
            previous = event.hash
        }
        guard let row else {
            problems.append("\(name): \(events.count) events but no state row")
            return problems
        }
        if row.version != Int64(events.count) || row.lastHash != previous {
            problems.append("\(name): the state row is at version \(row.version), its events end at \(events.count) (a cut tail or an edited row)")
        }
        if isKV {
            var record: KVState?
            for event in events { record = applyKV(event.recorded, to: record) }
            if (try? KVState(serializedBytes: row.state)) != record {
                problems.append("\(name): the stored record differs from the fold of its events")
            }
        } else {
            var state: TransactionState?
            for event in events { state = apply(event.recorded, to: state) }
            if (try? TransactionState(serializedBytes: row.state)) != state {
                problems.append("\(name): the stored state (status \((try? TransactionState(serializedBytes: row.state))?.status.dtmName ?? "unreadable")) differs from the fold of its events (status \(state?.status.dtmName ?? "none"))")
            }
        }
        return problems
    }

    /// Reads one state table in key order a page at a time, alongside the events' stream order.
    private struct StateRowCursor {
        let store: PostgresTransactionStore
        let table: String
        let key: String
        var buffered: [(key: Data, version: Int64, lastHash: Data, state: Data)] = []
        var last: Data?
        var exhausted = false

        init(store: PostgresTransactionStore, table: String, key: String) {
            self.store = store
            self.table = table
            self.key = key
        }

        /// The row of `stream`, if any; every row before it (which no stream had) goes to `missing`.
        mutating func row(for stream: Data, missing: (Data) -> Void) async throws -> (version: Int64, lastHash: Data, state: Data)? {
            while true {
                if buffered.isEmpty {
                    guard try await fill() else { return nil }
                }
                let next = buffered[0]
                if next.key.lexicographicallyPrecedes(stream) {
                    missing(next.key)
                    buffered.removeFirst()
                    continue
                }
                guard next.key == stream else { return nil }
                buffered.removeFirst()
                return (next.version, next.lastHash, next.state)
            }
        }

        /// The keys of the rows no stream reached.
        mutating func rest() async throws -> [Data] {
            var keys = [Data]()
            while true {
                if buffered.isEmpty {
                    guard try await fill() else { return keys }
                }
                keys += buffered.map(\.key)
                buffered.removeAll()
            }
        }

        private mutating func fill() async throws -> Bool {
            guard !exhausted else { return false }
            let rows = try await store.client.query("""
                SELECT \(unescaped: key), version, last_hash, state FROM \(unescaped: store.prefix)\(unescaped: table)
                WHERE \(last == nil) OR \(unescaped: key) > \(last ?? Data()) ORDER BY \(unescaped: key) LIMIT 5000
                """, logger: store.logger)
            for try await row in rows.decode((Data, Int64, Data, Data).self) { buffered.append(row) }
            if buffered.count < 5000 { exhausted = true }
            last = buffered.last?.key ?? last
            return !buffered.isEmpty
        }
    }
}
