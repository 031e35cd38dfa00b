import ByteIdentity
import DTMWire
public import EventLog
import Foundation
public import Projections
import Synchronization
public import TransactionStore

/// Where and how to open the embedded store (an LMDB environment holding the log and the view).
public struct LMDBStoreConfiguration: Sendable {
    /// The data directory (dtm's `Store.Path`).
    public var path: String
    /// How commits are made durable.
    public var durability: Durability = .sync
    /// Open without appending, beside a writer in another process.
    public var readOnly = false
    /// Start a new log over a `data.mdb` of 0 bytes (refused otherwise: it is damage).
    public var acceptEmptyDataFile = false
    /// Open for writing even though another process holds the writer lock (repairs only).
    public var ignoreWriterLock = false
    /// Keep the view current as the log grows; off only to rebuild the view from the log.
    public var maintainsView = true

    public init(path: String) { self.path = path }
}

/// The embedded `TransactionStore`: the hash-chained event log in LMDB with the transaction view
/// as its projection, updated in the same write transaction. One process appends (the log's writer
/// lock), so compare-and-append is checked here: every append of the process passes one lock that
/// knows each recently appended transaction's version, including appends queued but not yet
/// committed (others are read from the view). Claims are
/// held in memory — one node drives every transaction of its log.
///
/// Every error leaves as a `RequestError` that says what the storage did (`RequestError(storage:)`).
public final class LMDBTransactionStore: TransactionStore {
    /// The log, for the audit tools.
    public let log: EventLog
    /// The materialized view of every transaction's state.
    public let view: TransactionView
    /// The version of each transaction appended to lately, as the view has it once the appends
    /// still queued for it (`appends`) commit. Spares the append's check a view read; bounded by
    /// `knownVersionsLimit` (transactions with nothing queued are forgotten first).
    private let versions = Mutex<[ExactString: (version: UInt64, appends: Int)]>([:])
    private static let knownVersionsLimit = 65_536
    /// Claimed transactions, each with when its claim ends.
    private let claims = Mutex<[ExactString: ContinuousClock.Instant]>([:])

    init(log: EventLog, view: TransactionView) {
        self.log = log
        self.view = view
    }

    /// Opens (or creates) the store in `configuration.path`; a writable one brings the view up to
    /// date with the log first.
    public static func open(_ configuration: LMDBStoreConfiguration) async throws -> LMDBTransactionStore {
        var options = LMDBOptions()
        options.readOnly = configuration.readOnly
        options.noSync = configuration.durability == .noSync
        options.acceptEmptyDataFile = configuration.acceptEmptyDataFile
        let environment = try LMDBEnvironment(path: configuration.path, options: options)
        let view = try TransactionView(environment: environment)
        var logConfiguration = EventLogConfiguration(path: configuration.path)
        logConfiguration.durability = configuration.durability
        logConfiguration.readOnly = configuration.readOnly
        logConfiguration.ignoreWriterLock = configuration.ignoreWriterLock
        logConfiguration.onCommit = { events, duration in StoreMetrics.groupCommitted(store: "lmdb", events: events, duration: duration) }
        let log = try await EventLog.open(
            logConfiguration, projector: configuration.maintainsView && !configuration.readOnly ? view : nil,
            environment: environment)
        return LMDBTransactionStore(log: log, view: view)
    }

    /// Flushes and closes the log.
    public func close() async throws {
        try await log.close()
    }

    public func transaction(_ gid: String) async throws -> TransactionState? {
        try storage { try view.transaction(gid) }
    }

    public func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend {
        let entries = try storage { try events.map { try $0.logEntry(gid: gid) } }
        let key = gid.exact
        return try storage {
            try versions.withLock { versions in
                let current = try versions[key]?.version
                    ?? (KVStream.isKV(gid) ? view.kvRecord(stream: gid)?.streamVersion : view.transaction(gid)?.version)
                guard current == expectedVersion else {
                    throw StoreConflict(gid: gid, expectedVersion: expectedVersion, actualVersion: current)
                }
                guard !entries.isEmpty else { return CommittedAppend() }
                let ticket = try log.enqueue(entries) { [weak self] result in
                    self?.finished(key, committed: (try? result.get()) != nil)
                }
                let added = UInt64(clamping: entries.count)
                let version = (expectedVersion ?? 0) > .max - added ? .max : (expectedVersion ?? 0) + added
                if versions.count >= Self.knownVersionsLimit { versions = versions.filter { $0.value.appends > 0 } }
                versions[key] = (version, (versions[key]?.appends ?? 0) + 1)
                return TicketAppend(ticket: ticket)
            }
        }
    }

    /// One queued append of `gid` ended. Committed: the view has it. Failed: the view does not, so
    /// the version is forgotten and the next append is checked against the view (an append decided
    /// on top of the failed one no longer matches).
    private func finished(_ gid: ExactString, committed: Bool) {
        versions.withLock { versions in
            guard committed else {
                versions[gid] = nil
                return
            }
            if let entry = versions[gid] { versions[gid] = (entry.version, max(entry.appends - 1, 0)) }
        }
    }

    public func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String] {
        guard limit > 0 else { return [] }
        let now = ContinuousClock.now
        let claimed = claims.withLock { claims in
            claims = claims.filter { $0.value > now }
            return Set(claims.keys)
        }
        let due = try storage { try view.dueTransactions(atOrBefore: time, limit: limit + claimed.count) }
        return claims.withLock { claims in
            var taken = [String]()
            for entry in due where taken.count < limit && claims[entry.gid.exact].map({ $0 <= now }) ?? true {
                claims[entry.gid.exact] = now + lease
                taken.append(entry.gid)
            }
            return taken
        }
    }

    /// One process drives every transaction of its log, so a claim held here is this node's own:
    /// renewing it succeeds (the coordinator's lock keeps its rounds apart).
    public func claim(_ gid: String, lease: Duration) async throws -> Bool {
        claims.withLock { claims in
            claims[gid.exact] = .now + lease
            return true
        }
    }

    public func release(_ gid: String, holdFor: Duration) async {
        claims.withLock { claims in
            claims[gid.exact] = holdFor > .zero ? .now + holdFor : nil
        }
    }

    public func scheduled(after time: Int64, limit: Int) async throws -> [String] {
        try storage { try view.scheduledTransactions(after: time, limit: limit).map(\.gid) }
    }

    public func nextDueTime() async throws -> Int64? {
        let now = ContinuousClock.now
        let claimed = claims.withLock { claims in Set(claims.filter { $0.value > now }.keys) }
        let upcoming = try storage { try view.dueTransactions(atOrBefore: .max, limit: claimed.count + 1) }
        return upcoming.first { !claimed.contains($0.gid.exact) }?.dueUs
    }

    public func dueCount(atOrBefore time: Int64, upTo limit: Int) async throws -> Int {
        let now = ContinuousClock.now
        let claimed = claims.withLock { claims in Set(claims.filter { $0.value > now }.keys) }
        let due = try storage { try view.dueTransactions(atOrBefore: time, limit: limit + claimed.count) }
        return min(limit, due.count { !claimed.contains($0.gid.exact) })
    }

    public func countsByStatus(upTo limit: Int) async throws -> [TransactionStatus: Int] {
        try storage { try view.countsByStatus(upTo: limit) }
    }

    public func lastSeq() async throws -> UInt64 {
        try storage { try log.lastSeq() }
    }

    /// Each record of `gid` is decoded with its checksum checked, and its links to the records
    /// before and after it in the log's one chain are checked.
    public func auditedHistory(of gid: String) async throws -> AuditedHistory {
        try storage {
            var problems = [String]()
            let records: [LogRecord]
            do {
                records = try log.records(ofStream: gid)
            } catch {
                return AuditedHistory(events: [], hashes: [], problems: ["\(error)"], checked: "the log's records could not be read")
            }
            for record in records {
                let before = record.seq == 1 ? RecordHash.genesis : try log.record(record.seq - 1)?.hash
                if before != record.previousHash { problems.append("event \(record.seq) does not chain to event \(record.seq - 1)") }
                if let after = try log.record(record.seq + 1), after.previousHash != record.hash {
                    problems.append("event \(record.seq + 1) does not chain to event \(record.seq)")
                }
            }
            return AuditedHistory(
                events: try records.map(RecordedEvent.init), hashes: records.map(\.hash.bytes),
                problems: problems,
                checked: "each event's checksum, and its links to the events before and after it in the log's hash chain")
        }
    }

    public func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        let found = try storage { try view.newestTransactions(before: page?.bytes, limit: limit, matching: filter.accepts) }
        return TransactionPage(transactions: found.states, next: found.next.map(PageToken.init(bytes:)))
    }

    public func kvRecord(cat: String, key: String) async throws -> KVState? {
        try storage { try view.kvRecord(stream: KVStream.id(cat: cat, key: key)) }
    }

    public func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] {
        try storage { try view.kvRecords(cat: cat, after: position, limit: limit) }
    }

    public func history(of gid: String) async throws -> [RecordedEvent] {
        try storage { try log.records(ofStream: gid).map(RecordedEvent.init) }
    }

    public func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error> {
        log.follow(after: seq).map { record in
            do {
                return try RecordedEvent(record)
            } catch {
                throw RequestError(storage: error)
            }
        }
    }

    /// Runs `body`, describing any storage failure as a `RequestError`.
    private func storage<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let conflict as StoreConflict {
            throw conflict
        } catch {
            throw RequestError(storage: error)
        }
    }
}

/// An append waiting for the log's commit.
struct TicketAppend: PendingAppend {
    let ticket: AppendTicket

    func durable() async throws {
        do {
            _ = try await ticket.durable()
        } catch {
            throw RequestError(storage: error)
        }
    }
}

/// An append of no events: nothing to wait for.
struct CommittedAppend: PendingAppend {
    func durable() async throws {}
}
