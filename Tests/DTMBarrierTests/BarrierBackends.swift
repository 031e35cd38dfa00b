import DTMBarrier
import DTMBarrierPostgres
import DTMBarrierSQLite
import DTMClient
import Foundation
import Logging
import PostgresNIO
import SQLiteNIO
import Testing

/// The databases the barrier tests run on. PostgreSQL is the private cluster the test command
/// starts (`SWIFTDTM_TEST_POSTGRES=host:port`, user postgres, database postgres); each test
/// gets a schema of its own and drops it.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres

    static let postgresAddress = ProcessInfo.processInfo.environment["SWIFTDTM_TEST_POSTGRES"]

    /// The backends this run can reach: both under the test command.
    static var available: [Backend] { postgresAddress == nil ? [.sqlite] : allCases }

    var testDescription: String { rawValue }

    /// Runs `body` on a fresh barrier database of this backend (with an empty business table).
    func withDatabase(_ body: (any TestBarrierDatabase) async throws -> Void) async throws {
        switch self {
        case .sqlite:
            let database = try await SQLiteBarrierDatabase.open(storage: .memory)
            do {
                _ = try await database.connection.query("CREATE TABLE business_rows (id TEXT NOT NULL)", [])
                try await body(database)
            } catch {
                try await database.close()
                throw error
            }
            try await database.close()
        case .postgres:
            let address = try #require(Backend.postgresAddress)
            let parts = address.split(separator: ":")
            let port = try #require(parts.last.flatMap { Int($0) })
            let client = PostgresClient(configuration: .init(
                host: String(parts.dropLast().joined(separator: ":")), port: port, username: "postgres", password: nil,
                database: "postgres", tls: .disable))
            let schema = "barrier_test_\(UInt32.random(in: 0...UInt32.max))"
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                let database = try PostgresBarrierDatabase(client: client, table: "\(schema).barrier")
                try await database.createTable()
                try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(schema).business_rows (id text NOT NULL)"))
                let tested = PostgresTestDatabase(base: database, schema: schema)
                do {
                    try await body(tested)
                } catch {
                    _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE"))
                    throw error
                }
                try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE"))
            }
        }
    }
}

/// A barrier database with a business table, for checking that the business change and the
/// barrier rows commit or roll back together.
protocol TestBarrierDatabase: BarrierDatabase {
    func insertBusinessRow(_ id: String, in transaction: Transaction) async throws
    func businessRows() async throws -> [String]
}

/// A business error thrown from a barrier's body.
struct BusinessError: Error, Equatable {}

extension TestBarrierDatabase {
    /// A barrier call whose body records `id` in the business table, then throws `error` if
    /// given; true when the body ran.
    func call(_ barrier: BranchBarrier, recording id: String, thenThrowing error: (any Error)? = nil,
              holding hold: Duration = .zero) async throws -> Bool {
        let ran = try await barrier.call(on: self) { transaction in
            try await insertBusinessRow(id, in: transaction)
            if hold > .zero { try await Task.sleep(for: hold) }
            if let error { throw error }
            return true
        }
        return ran ?? false
    }

    /// The reason stored under `key`, read in a transaction of its own.
    func storedReason(_ key: BarrierKey) async throws -> String? {
        try await withTransaction { transaction in try await reason(of: key, in: transaction) }
    }

    /// `Msg.doAndSubmit` with the barrier on this database; the body records `id`, then throws
    /// `error` if given.
    func doAndSubmit(_ msg: Msg, _ client: DtmClient, queryPrepared: String, recording id: String,
                     thenThrowing error: (any Error)? = nil) async throws {
        try await msg.doAndSubmit(client, queryPrepared: queryPrepared, database: self) { transaction in
            try await insertBusinessRow(id, in: transaction)
            if let error { throw error }
        }
    }

    /// dtm's QueryPrepared answered from this database.
    func queryPrepared(gid: String) async throws {
        try await BranchBarrier.queryPrepared(gid: gid, on: self)
    }
}

extension SQLiteBarrierDatabase: TestBarrierDatabase {
    func insertBusinessRow(_ id: String, in connection: SQLiteConnection) async throws {
        _ = try await connection.query("INSERT INTO business_rows (id) VALUES (?)", [.text(id)])
    }

    func businessRows() async throws -> [String] {
        try await withTransaction { connection in
            try await connection.query("SELECT id FROM business_rows ORDER BY rowid", []).compactMap { $0.column("id")?.string }
        }
    }
}

/// The PostgreSQL barrier database of one test, with its schema's business table.
struct PostgresTestDatabase: TestBarrierDatabase {
    let base: PostgresBarrierDatabase
    let schema: String

    func withTransaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await base.withTransaction(body)
    }

    func insertBarrier(_ row: BarrierRow, in transaction: PostgresConnection) async throws -> Bool {
        try await base.insertBarrier(row, in: transaction)
    }

    func reason(of key: BarrierKey, in transaction: PostgresConnection) async throws -> String? {
        try await base.reason(of: key, in: transaction)
    }

    func insertBusinessRow(_ id: String, in connection: PostgresConnection) async throws {
        var binds = PostgresBindings()
        binds.append(id)
        try await connection.query(PostgresQuery(unsafeSQL: "INSERT INTO \(schema).business_rows (id) VALUES ($1)", binds: binds), logger: Logger(label: "barrier-tests"))
    }

    func businessRows() async throws -> [String] {
        let rows = try await base.client.query(PostgresQuery(unsafeSQL: "SELECT id FROM \(schema).business_rows ORDER BY ctid"))
        var ids: [String] = []
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }
}
