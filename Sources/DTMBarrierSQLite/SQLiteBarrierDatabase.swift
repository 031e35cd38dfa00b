public import DTMBarrier
public import SQLiteNIO

/// dtm's barrier table on SQLite (sqlite-nio): the embedded default for tests and small
/// services. The table has dtm's columns and unique key (SQLite has no schemas: the default
/// table is `barrier`). One connection serves every local transaction, one at a time, so
/// business code gets the connection itself, inside `BEGIN IMMEDIATE … COMMIT`.
public final class SQLiteBarrierDatabase: BarrierDatabase {
    public typealias Transaction = SQLiteConnection

    /// The one connection; use it through `withTransaction` (or a barrier's `call`).
    public let connection: SQLiteConnection
    /// The barrier table's name.
    public let table: String
    private let gate = TransactionGate()

    /// Opens `storage` (a file, or memory) and creates the barrier table unless it exists; close
    /// it with `close()`.
    public static func open(storage: SQLiteConnection.Storage, table: String = "barrier") async throws -> SQLiteBarrierDatabase {
        let table = try validatedBarrierTable(table)
        let connection = try await SQLiteConnection.open(storage: storage)
        do {
            _ = try await connection.query("PRAGMA busy_timeout = 5000", [])
            _ = try await connection.query("""
                CREATE TABLE IF NOT EXISTS \(table) (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  trans_type VARCHAR(45) DEFAULT '',
                  gid VARCHAR(128) DEFAULT '',
                  branch_id VARCHAR(128) DEFAULT '',
                  op VARCHAR(45) DEFAULT '',
                  barrier_id VARCHAR(45) DEFAULT '',
                  reason VARCHAR(45) DEFAULT '',
                  create_time DATETIME DEFAULT CURRENT_TIMESTAMP,
                  update_time DATETIME DEFAULT CURRENT_TIMESTAMP,
                  CONSTRAINT uniq_barrier UNIQUE (gid, branch_id, op, barrier_id)
                )
                """, [])
        } catch {
            try? await connection.close()
            throw error
        }
        return SQLiteBarrierDatabase(connection: connection, table: table)
    }

    /// Opens `storage`, runs `body` with the database, and closes it whether `body` returns or
    /// throws.
    public static func withDatabase<Result: Sendable>(
        storage: SQLiteConnection.Storage, table: String = "barrier", _ body: (SQLiteBarrierDatabase) async throws -> Result
    ) async throws -> Result {
        let database = try await open(storage: storage, table: table)
        let result: Result
        do {
            result = try await body(database)
        } catch {
            try? await database.close()
            throw error
        }
        try await database.close()
        return result
    }

    private init(connection: SQLiteConnection, table: String) {
        self.connection = connection
        self.table = table
    }

    /// Closes the connection; the database cannot be used afterwards.
    public func close() async throws {
        try await connection.close()
    }

    public func withTransaction<Result: Sendable>(_ body: (SQLiteConnection) async throws -> Result) async throws -> Result {
        await gate.enter()
        do {
            _ = try await connection.query("BEGIN IMMEDIATE", [])
            let result: Result
            do {
                result = try await body(connection)
            } catch {
                _ = try? await connection.query("ROLLBACK", [])
                throw error
            }
            _ = try await connection.query("COMMIT", [])
            await gate.leave()
            return result
        } catch {
            await gate.leave()
            throw error
        }
    }

    public func insertBarrier(_ row: BarrierRow, in connection: SQLiteConnection) async throws -> Bool {
        let inserted = try await connection.query("""
            INSERT INTO \(table) (trans_type, gid, branch_id, op, barrier_id, reason) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING RETURNING id
            """, [row.transType, row.key.gid, row.key.branchID, row.key.op, row.key.barrierID, row.reason].map(SQLiteData.text))
        return !inserted.isEmpty
    }

    public func reason(of key: BarrierKey, in connection: SQLiteConnection) async throws -> String? {
        let rows = try await connection.query("""
            SELECT reason FROM \(table) WHERE gid = ? AND branch_id = ? AND op = ? AND barrier_id = ?
            """, [key.gid, key.branchID, key.op, key.barrierID].map(SQLiteData.text))
        return rows.first?.column("reason")?.string
    }
}

/// Lets one local transaction at a time use the connection, in arrival order.
actor TransactionGate {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func enter() async {
        guard busy else {
            busy = true
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
    }
}
