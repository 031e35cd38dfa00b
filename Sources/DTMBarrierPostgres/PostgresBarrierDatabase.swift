public import DTMBarrier
public import Logging
public import PostgresNIO

/// dtm's barrier table on PostgreSQL (postgres-nio): the table dtm's
/// `sqls/dtmcli.barrier.postgres.sql` creates (`dtm_barrier.barrier` unless told otherwise), so
/// Go services using dtm's barrier can share it. Local transactions run on connections of
/// `client`; business code gets the transaction's `PostgresConnection`.
public struct PostgresBarrierDatabase: BarrierDatabase {
    public typealias Transaction = PostgresConnection

    /// The pool the local transactions run on (the caller runs it).
    public let client: PostgresClient
    /// `[schema.]table`, dtm's `BarrierTableName`.
    public let table: String
    let logger: Logger

    /// A barrier database on `client` (which the caller runs); `table` is checked to be a plain
    /// `[schema.]table` name.
    public init(client: PostgresClient, table: String = "dtm_barrier.barrier", logger: Logger = Logger(label: "dtm.barrier")) throws {
        self.client = client
        self.table = try validatedBarrierTable(table)
        self.logger = logger
    }

    /// Creates the table (and its schema) as dtm's SQL does, unless it exists.
    public func createTable() async throws {
        let parts = table.split(separator: ".")
        let schema = parts.count == 2 ? String(parts[0]) : nil
        let sequence = table + "_seq"
        var statements: [String] = []
        if let schema { statements.append("CREATE SCHEMA IF NOT EXISTS \(schema)") }
        statements.append("CREATE SEQUENCE IF NOT EXISTS \(sequence)")
        statements.append("""
            CREATE TABLE IF NOT EXISTS \(table) (
              id bigint NOT NULL DEFAULT NEXTVAL('\(sequence)'),
              trans_type varchar(45) default '',
              gid varchar(128) default '',
              branch_id varchar(128) default '',
              op varchar(45) default '',
              barrier_id varchar(45) default '',
              reason varchar(45) default '',
              create_time timestamp(0) with time zone DEFAULT NULL,
              update_time timestamp(0) with time zone DEFAULT NULL,
              PRIMARY KEY(id),
              CONSTRAINT uniq_barrier unique(gid, branch_id, op, barrier_id)
            )
            """)
        try await withTransaction { connection in
            for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
        }
    }

    public func withTransaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            // The caller's error (a DtmError.failure, say) comes back as it was thrown.
            throw error.closureError ?? error.beginError ?? error.commitError ?? error
        }
    }

    public func insertBarrier(_ row: BarrierRow, in connection: PostgresConnection) async throws -> Bool {
        var binds = PostgresBindings()
        for value in [row.transType, row.key.gid, row.key.branchID, row.key.op, row.key.barrierID, row.reason] { binds.append(value) }
        let inserted = try await connection.query(PostgresQuery(unsafeSQL: """
            INSERT INTO \(table) (trans_type, gid, branch_id, op, barrier_id, reason) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT ON CONSTRAINT uniq_barrier DO NOTHING RETURNING 1
            """, binds: binds), logger: logger)
        var count = 0
        for try await _ in inserted { count += 1 }
        return count > 0
    }

    public func reason(of key: BarrierKey, in connection: PostgresConnection) async throws -> String? {
        var binds = PostgresBindings()
        for value in [key.gid, key.branchID, key.op, key.barrierID] { binds.append(value) }
        let rows = try await connection.query(PostgresQuery(unsafeSQL: """
            SELECT reason FROM \(table) WHERE gid = $1 AND branch_id = $2 AND op = $3 AND barrier_id = $4
            """, binds: binds), logger: logger)
        for try await (reason) in rows.decode(String.self) { return reason }
        return nil
    }
}
