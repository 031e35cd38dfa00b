import ByteIdentity
import Crypto
import DTMWire
import Foundation
public import Logging
import PostgresNIO
import NIOCore
import NIOFoundationCompat
public import Projections
import SwiftProtobuf
import Synchronization
public import TransactionStore

/// Where the shared store lives (dtm's `Store` keys for a SQL driver) and who this node is.
public struct PostgresStoreConfiguration: Sendable, Equatable {
    /// Where PostgreSQL listens.
    public var host = "127.0.0.1"
    public var port = 5432
    public var user = "postgres"
    public var password = ""
    /// The database (it must exist).
    public var database = "dtm"
    /// The schema that holds SwiftDTM's tables (created if missing; the database must exist).
    public var schema = "public"
    /// Whether the connections are encrypted, with libpq's sslmode names: `disable`, `prefer`
    /// (TLS when the server offers it, the default), `require` (TLS, the certificate not checked),
    /// `verify-full` (TLS, the certificate checked against `sslRootCert` or the system's roots
    /// and the host name).
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var sslMode = TLSMode.prefer
    /// A PEM file of the certificates `verify-full` trusts; empty: the system's roots.
    public var sslRootCert = ""

    /// The longest any statement may run (PostgreSQL's statement_timeout); nil: no limit (a
    /// reader such as dtmctl). A node's appends are bounded by it, which is what lets a follower
    /// of the log pass a seq that never commits (`PostgresFollow.gapPatience`): keep the default
    /// on every node.
    public var statementTimeout: Duration? = PostgresStoreConfiguration.writeTimeout
    /// The statement timeout of dtmd nodes.
    public static let writeTimeout: Duration = .seconds(5)
    /// This node's name in the claims it takes.
    public var node = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"

    public init() {}

    /// `host:port/database schema`, for messages.
    public var description: String { "\(host):\(port)/\(database) schema \(schema)" }
}

/// The shared `TransactionStore` on PostgreSQL, for several dtmd nodes: the same events and the
/// same `apply` as the embedded store. Every event is a row of `swiftdtm_events` (global order
/// `seq`, the stream's own `stream_seq`, and a SHA-256 chained to the stream's previous event);
/// the transaction's state row (`swiftdtm_transactions`, or `swiftdtm_kv` for a KV record) is
/// written in the same SQL transaction, under its row lock, after checking the version the caller
/// decided on (compare-and-append). Due work is claimed with an owner and a lease on the state row
/// (`FOR UPDATE SKIP LOCKED`), so one node drives a transaction at a time. An append is durable
/// when it returns (PostgreSQL's commit).
public final class PostgresTransactionStore: TransactionStore {
    /// The version of the tables this build reads and writes.
    public static let schemaVersion = 2

    let client: PostgresClient
    let configuration: PostgresStoreConfiguration
    let logger: Logger
    /// `"<schema>".swiftdtm_` — every table's name starts so.
    let prefix: String
    /// The state and last hash of the transactions this node appended to lately: an append on
    /// top of one needs no read (the conditional write still checks the version).
    let recent = Mutex<[ExactString: (state: TransactionState, lastHash: Data)]>([:])
    static let recentLimit = 50_000
    /// Whether `run()` has started the connection pool (its first statement follows at once).
    private let running = Mutex(false)
    /// Transaction appends and claims waiting for a writer (group commit).
    let queue = PostgresWriteQueue()
    /// How many batches are written at once, each on its own connection.
    static let writers = 8

    public init(_ configuration: PostgresStoreConfiguration, logger: Logger = Logger(label: "swiftdtm.postgres")) throws {
        guard configuration.schema.range(of: "^[A-Za-z_][A-Za-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw RequestError.invalidArgument("Store.Schema '\(configuration.schema)' must be a plain SQL identifier")
        }
        self.configuration = configuration
        self.logger = logger
        prefix = "\"\(configuration.schema)\".swiftdtm_"
        var options = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.user,
            password: configuration.password.isEmpty ? nil : configuration.password, database: configuration.database,
            tls: Self.tls(configuration))
        options.options.maximumConnections = 32
        // The prepared statements name their tables without the schema.
        options.options.additionalStartupParameters = [("search_path", "\"\(configuration.schema)\"")]
        if let timeout = configuration.statementTimeout {
            options.options.additionalStartupParameters.append(("statement_timeout", String(max(Self.microseconds(timeout) / 1000, 1))))
        }
        client = PostgresClient(configuration: options, backgroundLogger: logger)
    }

    /// The TLS settings of `configuration.sslMode`; nil for `disable`.
    static func tls(_ configuration: PostgresStoreConfiguration) -> TLSConfiguration? {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch configuration.sslMode {
        case .disable:
            return nil
        case .prefer, .require:
            // As libpq: encrypted, but the certificate is not checked.
            tls.certificateVerification = .none
        case .verifyFull:
            if !configuration.sslRootCert.isEmpty { tls.trustRoots = .file(configuration.sslRootCert) }
        }
        return tls
    }

    static func tls(_ configuration: PostgresStoreConfiguration) -> PostgresClient.Configuration.TLS {
        guard let tls: TLSConfiguration = tls(configuration) else { return .disable }
        return configuration.sslMode == .prefer ? .prefer(tls) : .require(tls)
    }

    /// Opens one connection as the pool would, so that a server that cannot be reached, refuses
    /// the user or fails the TLS check is reported at once instead of retried by the pool.
    func checkConnection() async throws {
        let tls: PostgresConnection.Configuration.TLS
        if let settings: TLSConfiguration = Self.tls(configuration) {
            tls = configuration.sslMode == .prefer ? .prefer(try NIOSSLContext(configuration: settings)) : .require(try NIOSSLContext(configuration: settings))
        } else {
            tls = .disable
        }
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: .init(host: configuration.host, port: configuration.port, username: configuration.user,
                                     password: configuration.password.isEmpty ? nil : configuration.password,
                                     database: configuration.database, tls: tls),
                id: 0, logger: logger)
        } catch {
            throw RequestError.unavailable("cannot connect to PostgreSQL at \(configuration.description) (Store.SslMode \(configuration.sslMode.rawValue)): \(String(reflecting: error))")
        }
        try? await connection.close()
    }

    /// Runs the connection pool and the append writers until the task is cancelled; every
    /// other call needs it running.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                self.running.withLock { $0 = true }
                await self.client.run()
            }
            for index in 0..<Self.writers { group.addTask { await self.writeBatches(index: index) } }
        }
        queue.stop()
    }

    // MARK: Schema

    /// Creates the schema's tables and indexes when missing, and refuses tables written by an
    /// incompatible version.
    public func prepareSchema() async throws {
        try await checkConnection()
        await poolStarted()
        try await storage {
            try await client.withTransaction(logger: logger) { connection in
                // One node at a time creates the tables.
                try await connection.query("SELECT pg_advisory_xact_lock(7366270)", logger: logger)
                for statement in Self.schema(prefix: prefix, schema: configuration.schema) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                let rows = try await connection.query("SELECT value FROM \(unescaped: prefix)meta WHERE key = 'schema_version'", logger: logger)
                var found: String?
                for try await value in rows.decode(String.self) { found = value }
                if let found {
                    guard found == String(Self.schemaVersion) else {
                        throw RequestError.unavailable(
                            "the PostgreSQL schema \(configuration.schema) holds SwiftDTM tables of version \(found); this build reads version \(Self.schemaVersion)")
                    }
                } else {
                    try await connection.query("INSERT INTO \(unescaped: prefix)meta (key, value) VALUES ('schema_version', \(String(Self.schemaVersion)))", logger: logger)
                }
            }
        }
    }

    /// Checks, without creating anything, that the schema holds SwiftDTM tables of this version
    /// (a reader such as dtmctl must not create an empty store where it expected dtmd's).
    public func requireSchema() async throws {
        try await checkConnection()
        await poolStarted()
        try await storage {
            let tables = try await client.query(
                "SELECT to_regclass(\(configuration.schema.isEmpty ? "" : "\"\(configuration.schema)\".swiftdtm_meta"))::text", logger: logger)
            var found: String?
            for try await name in tables.decode(String?.self) { found = name }
            guard found != nil else {
                throw RequestError.unavailable("the PostgreSQL schema \(configuration.schema) holds no SwiftDTM tables (has dtmd run on it?)")
            }
            let rows = try await client.query("SELECT value FROM \(unescaped: prefix)meta WHERE key = 'schema_version'", logger: logger)
            var version: String?
            for try await value in rows.decode(String.self) { version = value }
            guard version == String(Self.schemaVersion) else {
                throw RequestError.unavailable(
                    "the PostgreSQL schema \(configuration.schema) holds SwiftDTM tables of version \(version ?? "none"); this build reads version \(Self.schemaVersion)")
            }
        }
    }

    /// Waits until `run()` (started by the caller alongside) has started the pool, so the first
    /// statement is not queued before it (which PostgresNIO warns about).
    private func poolStarted() async {
        while !running.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(1)) }
        try? await Task.sleep(for: .milliseconds(1))
    }

    static func schema(prefix: String, schema: String) -> [String] {
        [
            "CREATE SCHEMA IF NOT EXISTS \"\(schema)\"",
            "CREATE TABLE IF NOT EXISTS \(prefix)meta (key text PRIMARY KEY, value text NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS \(prefix)events (
              seq bigserial PRIMARY KEY, stream bytea NOT NULL, stream_seq bigint NOT NULL, time_us bigint NOT NULL,
              type text NOT NULL, payload bytea NOT NULL, previous_hash bytea NOT NULL, hash bytea NOT NULL,
              UNIQUE (stream, stream_seq))
            """,
            """
            CREATE TABLE IF NOT EXISTS \(prefix)transactions (
              gid bytea PRIMARY KEY, version bigint NOT NULL, last_hash bytea NOT NULL, status smallint NOT NULL,
              trans_type text NOT NULL, create_time_us bigint NOT NULL, next_due_us bigint NOT NULL,
              claim_owner text, claim_until_us bigint NOT NULL DEFAULT 0, state bytea NOT NULL)
            """,
            // A transaction's row is rewritten by each of its appends: room on its page lets most of
            // those be heap-only updates, which touch no index.
            "ALTER TABLE \(prefix)transactions SET (fillfactor = 50)",
            "CREATE INDEX IF NOT EXISTS swiftdtm_transactions_due ON \(prefix)transactions (next_due_us) WHERE next_due_us > 0",
            "CREATE INDEX IF NOT EXISTS swiftdtm_transactions_created ON \(prefix)transactions (create_time_us DESC, gid DESC)",
            """
            CREATE TABLE IF NOT EXISTS \(prefix)kv (
              stream bytea PRIMARY KEY, cat bytea NOT NULL, key bytea NOT NULL, version bigint NOT NULL,
              last_hash bytea NOT NULL, deleted boolean NOT NULL, state bytea NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS swiftdtm_kv_cat_key ON \(prefix)kv (cat, key)",
            """
            CREATE TABLE IF NOT EXISTS \(prefix)batches (
              writer text NOT NULL, n bigint NOT NULL, previous_hash bytea NOT NULL, hash bytea NOT NULL, seqs bigint[] NOT NULL,
              PRIMARY KEY (writer, n))
            """,
        ]
    }

    // MARK: Reads

    public func transaction(_ gid: String) async throws -> TransactionState? {
        try await storage {
            let rows = try await client.query("SELECT state FROM \(unescaped: prefix)transactions WHERE gid = \(Data(gid.utf8))", logger: logger)
            for try await state in rows.decode(Data.self) { return try TransactionState(serializedBytes: state) }
            return nil
        }
    }

    /// What this node wrote last for `gid`, unverified (another node may have appended since, and
    /// a gid this node never wrote is answered nil without a read): the append decides.
    public func decisionState(_ gid: String) async throws -> (state: TransactionState?, verified: Bool) {
        (recent.withLock { $0[gid.exact]?.state }, false)
    }

    public func kvRecord(cat: String, key: String) async throws -> KVState? {
        try await storage { try await kvRecord(stream: KVStream.id(cat: cat, key: key)) }
    }

    public func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] {
        try await storage {
            let rows = try await client.query("""
                SELECT state FROM \(unescaped: prefix)kv
                WHERE cat = \(Data(cat.utf8)) AND (\(position == nil) OR key > \(Data((position ?? "").utf8))) AND NOT deleted
                ORDER BY key LIMIT \(max(limit, 0))
                """, logger: logger)
            var found = [KVState]()
            for try await state in rows.decode(Data.self) { found.append(try KVState(serializedBytes: state)) }
            return found
        }
    }

    public func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        try await storage {
            var after: (time: Int64, gid: Data) = (.max, Data())
            var bounded = false
            if let page, page.bytes.count >= 8 {
                let time = page.bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                after = (Int64(clamping: time), Data(page.bytes.dropFirst(8)))
                bounded = true
            }
            let status = Int16(clamping: filter.status?.rawValue ?? -1)
            let transType = filter.transType ?? ""
            // The gid prefix in SQL too, byte for byte: filtered after the LIMIT, pages would come back short.
            let gidPrefix = Data(filter.gidPrefix ?? [])
            let rows = try await client.query("""
                SELECT state, create_time_us, gid FROM \(unescaped: prefix)transactions
                WHERE (NOT \(bounded) OR (create_time_us, gid) < (\(after.time), \(after.gid)))
                  AND (\(status) < 0 OR status = \(status)) AND (\(transType) = '' OR trans_type = \(transType))
                  AND substring(gid FROM 1 FOR \(Int32(clamping: gidPrefix.count))) = \(gidPrefix)
                  AND create_time_us >= \(filter.createdFrom ?? .min) AND create_time_us <= \(filter.createdThrough ?? .max)
                ORDER BY create_time_us DESC, gid DESC LIMIT \(limit + 1)
                """, logger: logger)
            var states = [TransactionState]()
            var last: (Int64, Data)?
            var more = false
            for try await (bytes, time, gid) in rows.decode((Data, Int64, Data).self) {
                guard states.count < limit else {
                    more = true
                    break
                }
                let state = try TransactionState(serializedBytes: bytes)
                if filter.accepts(state) { states.append(state) }
                last = (time, gid)
            }
            let next = more ? last.map { time, gid in
                PageToken(bytes: (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(bitPattern: time) >> (UInt64($0) * 8)) } + Array(gid))
            } : nil
            return TransactionPage(transactions: states, next: next)
        }
    }

    public func history(of gid: String) async throws -> [RecordedEvent] {
        try await storage {
            let rows = try await client.query(
                "SELECT seq, time_us, type, payload FROM \(unescaped: prefix)events WHERE stream = \(Data(gid.utf8)) ORDER BY stream_seq",
                logger: logger)
            var events = [RecordedEvent]()
            for try await (seq, time, type, payload) in rows.decode((Int64, Int64, String, Data).self) {
                events.append(try Self.recorded(seq: seq, time: time, stream: gid, type: type, payload: payload))
            }
            return events
        }
    }

    /// The events appended after global position `seq`, then each new one as it is committed
    /// (polled every `PostgresFollow.interval`).
    public func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error> {
        PostgresFollow(store: self, after: Int64(clamping: seq))
    }

    /// Up to `limit` events after `seq` in global order.
    func events(after seq: Int64, limit: Int) async throws -> [RecordedEvent] {
        try await storage {
            let rows = try await client.query(
                "SELECT seq, time_us, stream, type, payload FROM \(unescaped: prefix)events WHERE seq > \(seq) ORDER BY seq LIMIT \(limit)",
                logger: logger)
            var events = [RecordedEvent]()
            for try await (seq, time, stream, type, payload) in rows.decode((Int64, Int64, Data, String, Data).self) {
                events.append(try Self.recorded(seq: seq, time: time, stream: String(decoding: stream, as: UTF8.self), type: type, payload: payload))
            }
            return events
        }
    }

    static func recorded(seq: Int64, time: Int64, stream: String, type: String, payload: Data) throws -> RecordedEvent {
        let event = try TransactionEvent(serializedBytes: payload)
        guard event.typeName == type else {
            throw RequestError.unavailable("event \(seq) of \(stream) is stored as '\(type)' but holds '\(event.typeName)'")
        }
        return RecordedEvent(seq: UInt64(clamping: seq), time: time, gid: stream, event: event)
    }

    // MARK: Appends

    public func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend {
        guard !events.isEmpty else {
            let current = KVStream.isKV(gid) ? try await kvRecord(stream: gid)?.streamVersion : try await transaction(gid)?.version
            guard current == expectedVersion else { throw StoreConflict(gid: gid, expectedVersion: expectedVersion, actualVersion: current) }
            return CommittedAppend()
        }
        do {
            guard KVStream.isKV(gid) else {
                let outcome = PostgresWrite()
                queue.enqueue(.init(gid: gid, work: .append(events, expectedVersion: expectedVersion, claimUntilUs: 0), outcome: outcome))
                return outcome
            }
            try await client.withTransaction(logger: logger) { connection in
                try await appendKV(events, to: gid, expectedVersion: expectedVersion, on: connection)
            }
        } catch {
            let cause = Self.cause(of: error)
            if let conflict = cause as? StoreConflict { throw conflict }
            if let psql = cause as? PSQLError, psql.serverInfo?[.sqlState] == "23505" {
                // Another node created the same stream at the same moment.
                throw StoreConflict(gid: gid, expectedVersion: expectedVersion, actualVersion: 1)
            }
            throw Self.describe(cause)
        }
        return CommittedAppend()
    }

    private func kvRecord(stream: String) async throws -> KVState? {
        let rows = try await client.query("SELECT state FROM \(unescaped: prefix)kv WHERE stream = \(Data(stream.utf8))", logger: logger)
        for try await state in rows.decode(Data.self) { return try KVState(serializedBytes: state) }
        return nil
    }

    /// The rows of one stream's events, all stamped at `time`, ending with hash `lastHash`.
    struct EventRows {
        let time: Int64
        var numbers = [Int64](), types = [String](), payloads = [ByteBuffer](), previousHashes = [ByteBuffer](), hashes = [ByteBuffer]()
        var lastHash: Data
    }

    /// The rows of `events` numbered after `streamSeq` and chained from `previous`, all stamped now.
    func eventRows(_ events: [TransactionEvent], stream: Data, after streamSeq: Int64, previous: Data) throws -> EventRows {
        var rows = EventRows(time: Self.nowUs(), lastHash: previous)
        for (index, event) in events.enumerated() {
            let number = streamSeq + Int64(index) + 1
            let payload = Data(try event.serializedBytes() as [UInt8])
            let hash = Self.hash(previous: rows.lastHash, stream: stream, streamSeq: number, time: rows.time, type: event.typeName, payload: payload)
            rows.numbers.append(number)
            rows.types.append(event.typeName)
            rows.payloads.append(ByteBuffer(data: payload))
            rows.previousHashes.append(ByteBuffer(data: rows.lastHash))
            rows.hashes.append(ByteBuffer(data: hash))
            rows.lastHash = hash
        }
        return rows
    }

    private func appendKV(_ events: [TransactionEvent], to stream: String, expectedVersion: UInt64?, on connection: PostgresConnection) async throws {
        let key = Data(stream.utf8)
        var record: KVState?
        var lastHash = Data(count: 32)
        let rows = try await connection.query("SELECT state, last_hash FROM \(unescaped: prefix)kv WHERE stream = \(key) FOR UPDATE", logger: logger)
        for try await (bytes, hash) in rows.decode((Data, Data).self) {
            record = try KVState(serializedBytes: bytes)
            lastHash = hash
        }
        guard record?.streamVersion == expectedVersion else {
            throw StoreConflict(gid: stream, expectedVersion: expectedVersion, actualVersion: record?.streamVersion)
        }
        let existed = record != nil
        let inserted = try await insert(events, stream: key, after: Int64(clamping: record?.streamVersion ?? 0), previous: lastHash, on: connection)
        for (event, row) in zip(events, inserted.seqs) {
            record = applyKV(RecordedEvent(seq: UInt64(clamping: row), time: inserted.time, gid: stream, event: event), to: record)
        }
        lastHash = inserted.lastHash
        guard let record else { throw RequestError.invalidArgument("the events of \(stream) must be `kv_changed`") }
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes = Data(try record.serializedBytes(options: options) as [UInt8])
        let version = Int64(clamping: record.streamVersion)
        if existed {
            try await connection.query("""
                UPDATE \(unescaped: prefix)kv SET version = \(version), last_hash = \(lastHash), deleted = \(record.deleted), state = \(bytes)
                WHERE stream = \(key)
                """, logger: logger)
        } else {
            try await connection.query("""
                INSERT INTO \(unescaped: prefix)kv (stream, cat, key, version, last_hash, deleted, state)
                VALUES (\(key), \(Data(record.cat.utf8)), \(Data(record.key.utf8)), \(version), \(lastHash), \(record.deleted), \(bytes))
                """, logger: logger)
        }
    }

    /// Inserts the rows of `events`, numbered after `streamSeq` and chained from `previous`, in one
    /// statement; their global seqs in order, their time, and the last hash.
    private func insert(
        _ events: [TransactionEvent], stream: Data, after streamSeq: Int64, previous: Data, on connection: PostgresConnection
    ) async throws -> (seqs: [Int64], time: Int64, lastHash: Data) {
        let rows = try eventRows(events, stream: stream, after: streamSeq, previous: previous)
        let inserted = try await connection.query("""
            INSERT INTO \(unescaped: prefix)events (stream, stream_seq, time_us, type, payload, previous_hash, hash)
            SELECT \(stream), n, \(rows.time), t, p, ph, h FROM unnest(\(rows.numbers)::bigint[], \(rows.types)::text[], \(rows.payloads)::bytea[],
              \(rows.previousHashes)::bytea[], \(rows.hashes)::bytea[]) AS e(n, t, p, ph, h)
            RETURNING seq, stream_seq
            """, logger: logger)
        var seqs = [Int64: Int64]()
        for try await (seq, number) in inserted.decode((Int64, Int64).self) { seqs[number] = seq }
        let ordered = rows.numbers.compactMap { seqs[$0] }
        guard ordered.count == events.count else { throw RequestError.unavailable("PostgreSQL returned \(seqs.count) seqs for \(events.count) events") }
        // A KV write is rare and not batched: it is a batch chain of its own, one row long.
        let writer = "\(configuration.node)/kv/\(UUID().uuidString)"
        try await connection.query("""
            INSERT INTO \(unescaped: prefix)batches (writer, n, previous_hash, hash, seqs)
            SELECT \(writer), 1, \(Data(count: 32)), sha256(\(Data(count: 32)) || string_agg(int8send(seq) || hash, ''::bytea ORDER BY seq)),
              array_agg(seq ORDER BY seq)
            FROM \(unescaped: prefix)events WHERE seq = ANY(\(ordered)::bigint[])
            """, logger: logger)
        return (ordered, rows.time, rows.lastHash)
    }

    /// SHA-256 over the stream's previous hash and everything the event row holds but its seq.
    static func hash(previous: Data, stream: Data, streamSeq: Int64, time: Int64, type: String, payload: Data) -> Data {
        var hasher = SHA256()
        hasher.update(data: previous)
        withUnsafeBytes(of: streamSeq.bigEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: time.bigEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: Int64(stream.count).bigEndian) { hasher.update(bufferPointer: $0) }
        hasher.update(data: stream)
        hasher.update(data: Data(type.utf8) + [0])
        hasher.update(data: payload)
        return Data(hasher.finalize())
    }

    // MARK: Claims

    static func nowUs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }

    /// `duration` in whole microseconds.
    static func microseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }

    public func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String] {
        guard limit > 0 else { return [] }
        return try await storage {
            let now = Self.nowUs()
            let until = now + Self.microseconds(lease)
            let rows = try await client.query("""
                UPDATE \(unescaped: prefix)transactions SET claim_owner = \(configuration.node), claim_until_us = \(until)
                WHERE gid IN (SELECT gid FROM \(unescaped: prefix)transactions
                              WHERE next_due_us > 0 AND next_due_us <= \(time) AND claim_until_us < \(now)
                              ORDER BY next_due_us, gid LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING gid, next_due_us
                """, logger: logger)
            var claimed = [(gid: Data, due: Int64)]()
            for try await (gid, due) in rows.decode((Data, Int64).self) { claimed.append((gid, due)) }
            // Earliest first, ties by gid bytes, as the LMDB due index orders them.
            return claimed.sorted { $0.due != $1.due ? $0.due < $1.due : $0.gid.lexicographicallyPrecedes($1.gid) }
                .map { String(decoding: $0.gid, as: UTF8.self) }
        }
    }

    /// The append and the claim in one write.
    public func appendAndClaim(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?, lease: Duration) async throws -> Bool {
        guard !events.isEmpty, !KVStream.isKV(gid) else {
            try await append(events, to: gid, expectedVersion: expectedVersion).durable()
            return try await claim(gid, lease: lease)
        }
        let outcome = PostgresWrite()
        queue.enqueue(.init(gid: gid, work: .append(events, expectedVersion: expectedVersion, claimUntilUs: Self.nowUs() + Self.microseconds(lease)), outcome: outcome))
        return try await outcome.written()
    }

    public func claim(_ gid: String, lease: Duration) async throws -> Bool {
        try await storage {
            let outcome = PostgresWrite()
            queue.enqueue(.init(gid: gid, work: .claim(untilUs: Self.nowUs() + Self.microseconds(lease)), outcome: outcome))
            if try await outcome.written() { return true }
            // Not taken: either another node holds it, or the gid is unknown (nothing to drive).
            return try await transaction(gid) == nil
        }
    }

    public func release(_ gid: String, holdFor: Duration) async {
        // This node's append that finished the transaction released every claim on it.
        if holdFor == .zero, recent.withLock({ $0[gid.exact]?.state.status.isTerminal }) == true { return }
        let until = holdFor > .zero ? Self.nowUs() + Self.microseconds(holdFor) : 0
        do {
            try await client.query("""
                UPDATE \(unescaped: prefix)transactions SET claim_owner = NULL, claim_until_us = \(until)
                WHERE gid = \(Data(gid.utf8)) AND claim_owner = \(configuration.node)
                """, logger: logger)
        } catch {
            // The lease then simply runs out.
            logger.warning("cannot release the claim on \(gid): \(Self.describe(error))")
        }
    }

    public func dueCount(atOrBefore time: Int64, upTo limit: Int) async throws -> Int {
        try await storage {
            let rows = try await client.query("""
                SELECT count(*) FROM (SELECT 1 FROM \(unescaped: prefix)transactions
                                      WHERE next_due_us > 0 AND next_due_us <= \(time) AND claim_until_us < \(Self.nowUs())
                                      LIMIT \(limit)) AS due
                """, logger: logger)
            for try await count in rows.decode(Int64.self) { return Int(clamping: count) }
            return 0
        }
    }

    public func countsByStatus(upTo limit: Int) async throws -> [TransactionStatus: Int] {
        try await counts().byStatus.mapValues { Int(clamping: min($0, Int64(limit))) }
    }

    public func nextDueTime() async throws -> Int64? {
        try await storage {
            let rows = try await client.query(
                "SELECT min(next_due_us) FROM \(unescaped: prefix)transactions WHERE next_due_us > 0 AND claim_until_us < \(Self.nowUs())",
                logger: logger)
            for try await due in rows.decode(Int64?.self) { return due }
            return nil
        }
    }

    public func scheduled(after time: Int64, limit: Int) async throws -> [String] {
        try await storage {
            let rows = try await client.query(
                "SELECT gid FROM \(unescaped: prefix)transactions WHERE next_due_us > \(time) ORDER BY next_due_us LIMIT \(max(limit, 0))",
                logger: logger)
            var gids = [String]()
            for try await gid in rows.decode(Data.self) { gids.append(String(decoding: gid, as: UTF8.self)) }
            return gids
        }
    }

    // MARK: Errors

    /// Runs `body`, describing any database failure as a `RequestError`.
    func storage<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            let cause = Self.cause(of: error)
            if let conflict = cause as? StoreConflict { throw conflict }
            throw Self.describe(cause)
        }
    }

    /// What failed inside a SQL transaction (which was rolled back), else `error` itself.
    static func cause(of error: any Error) -> any Error {
        guard let failed = error as? PostgresTransactionError else { return error }
        return failed.closureError ?? failed.commitError ?? failed.beginError ?? error
    }

    static func describe(_ error: any Error) -> RequestError {
        if let request = error as? RequestError { return request }
        if let psql = error as? PSQLError {
            let message = psql.serverInfo?[.message] ?? "\(psql.code)"
            return .unavailable("PostgreSQL: \(message)")
        }
        return .unavailable("PostgreSQL: \(error)")
    }
}

/// An append already committed.
struct CommittedAppend: PendingAppend {
    func durable() async throws {}
}
