import ArgumentParser
import ByteIdentity
import DtmConfiguration
import EventLog
import Foundation
import LMDBStore
import PostgresStore
import Projections

/// The store a command reads, as dtmd's configuration names it: the embedded log, or the
/// PostgreSQL store several nodes share.
enum AuditStore {
    case lmdb(EventLog, TransactionView, path: String)
    case postgres(PostgresTransactionStore)

    /// Every record of `gid` in order.
    func records(ofStream gid: String) async throws -> [AuditRecord] {
        switch self {
        case let .lmdb(log, _, _): return try log.records(ofStream: gid).map(AuditRecord.init)
        case let .postgres(store): return try await store.storedEvents(ofStream: gid).map(AuditRecord.init)
        }
    }

    /// The records from `from` through `through` in global order, while `body` returns true.
    func forEachRecord(from: UInt64 = 1, through: UInt64 = .max, _ body: (AuditRecord) throws -> Bool) async throws {
        switch self {
        case let .lmdb(log, _, _):
            try log.forEachRecord(from: from, through: through) { try body(try AuditRecord($0)) }
        case let .postgres(store):
            var after = from > 0 ? from - 1 : 0
            while true {
                let page = try await store.storedEvents(after: after, limit: 2000)
                for event in page {
                    guard event.recorded.seq <= through, try body(AuditRecord(event)) else { return }
                    after = event.recorded.seq
                }
                if page.count < 2000 { return }
            }
        }
    }

    func lastSeq() async throws -> UInt64 {
        switch self {
        case let .lmdb(log, _, _): return try log.lastSeq()
        case let .postgres(store): return try await store.lastSeq()
        }
    }

    /// The last seq appended at or before `time` (µs).
    func lastSeq(atOrBefore time: Int64) async throws -> UInt64 {
        switch self {
        case let .lmdb(log, _, _): return try Replay.lastSeq(of: log, atOrBefore: UInt64(max(time, 0)))
        case let .postgres(store): return try await store.lastSeq(atOrBefore: time)
        }
    }

    /// Every transaction's state as of `seq`, folded from the records with the same `apply`
    /// (on LMDB by `Replay`, which checks each record on the way).
    func states(through seq: UInt64) async throws -> [ExactString: TransactionState] {
        if case let .lmdb(log, _, _) = self { return try Replay.states(of: log, through: seq) }
        var states = [ExactString: TransactionState]()
        try await forEachRecord(through: seq) { record in
            if !KVStream.isKV(record.event.gid) { states[record.event.gid.exact] = apply(record.event, to: states[record.event.gid.exact]) }
            return true
        }
        return states
    }
}

/// A record as dtmctl shows it, from either store.
struct AuditRecord {
    let event: RecordedEvent
    let type: String
    let hash: String
    let previousHash: String
    var seq: UInt64 { event.seq }

    init(_ record: LogRecord) throws {
        event = try RecordedEvent(record)
        type = record.type
        hash = record.hash.description
        previousHash = record.previousHash.description
    }

    init(_ stored: StoredEvent) {
        event = stored.recorded
        type = stored.type
        hash = stored.hash.map { String(format: "%02x", $0) }.joined()
        previousHash = stored.previousHash.map { String(format: "%02x", $0) }.joined()
    }

    /// An event followed live (hashes are not shown for those).
    init(following recorded: RecordedEvent) {
        event = recorded
        type = recorded.event.typeName
        hash = ""
        previousHash = ""
    }
}

/// Which store to read: `--data DIR` (the embedded log there), else dtmd's config file (`-c`,
/// with the same environment overrides as dtmd), else `./data`. Given before the subcommand or
/// after it.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "The dtmd data directory (Store.Path, default ./data).")
    var local: String?

    @Option(name: [.customShort("c"), .customLong("config")], help: "dtmd's YAML config file: read the store it names (LMDB or PostgreSQL).")
    var localConfig: String?

    @ParentCommand var root: DtmCtl

    /// dtmd's configuration, unless a data directory was given.
    func configuration() throws -> DtmdConfiguration? {
        if local ?? root.data != nil { return nil }
        var warnings = [String]()
        do {
            return try DtmdConfiguration.load(file: localConfig ?? root.config, warnings: &warnings)
        } catch {
            throw CannotOpen(path: localConfig ?? root.config ?? "the environment", reason: "\(error)")
        }
    }

    /// The LMDB directory to read.
    var data: String {
        get throws { try local ?? root.data ?? configuration()?.storePath ?? "./data" }
    }

    /// Runs `body` on the store, read-only (dtmd may be writing it).
    func withStore<T: Sendable>(_ body: (AuditStore) async throws -> T) async throws -> T {
        if let configuration = try configuration(), configuration.storeDriver == "postgres" {
            let store: PostgresTransactionStore
            do {
                var readOnly = configuration.postgresStore
                readOnly.statementTimeout = nil  // a whole-store verify or export may take long
                store = try PostgresTransactionStore(readOnly)
            } catch {
                throw CannotOpen(path: "PostgreSQL \(configuration.postgresStore.description)", reason: "\(error)")
            }
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                defer { group.cancelAll() }
                do {
                    try await store.requireSchema()
                } catch {
                    throw CannotOpen(path: "PostgreSQL \(configuration.postgresStore.description)", reason: "\(error)")
                }
                return try await body(.postgres(store))
            }
        }
        let (log, view) = try await openReadOnly()
        return try await body(.lmdb(log, view, path: try data))
    }

    /// The log and view, read-only (another process may be writing).
    func openReadOnly() async throws -> (EventLog, TransactionView) {
        let path = try data
        do {
            var configuration = LMDBStoreConfiguration(path: path)
            configuration.readOnly = true
            let store = try await LMDBTransactionStore.open(configuration)
            return (store.log, store.view)
        } catch let damage as EventLogError {
            throw damage
        } catch {
            throw CannotOpen(path: path, reason: "\(error)")
        }
    }
}
