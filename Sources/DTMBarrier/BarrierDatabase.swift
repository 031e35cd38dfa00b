/// The key of a barrier row: dtm's unique (gid, branch_id, op, barrier_id).
public struct BarrierKey: Sendable, Hashable {
    /// The global transaction.
    public var gid: String
    /// The branch within it.
    public var branchID: String
    /// The op the row stands for (`action`, `compensate`, `try`, `cancel`, `msg`, …).
    public var op: String
    /// The number of the barrier within one branch call (`01`, `02`, …).
    public var barrierID: String

    /// A key of the four fields.
    public init(gid: String, branchID: String, op: String, barrierID: String) {
        self.gid = gid
        self.branchID = branchID
        self.op = op
        self.barrierID = barrierID
    }
}

/// A row of dtm's barrier table: its key, the transaction's type, and the op that wrote it.
public struct BarrierRow: Sendable, Hashable {
    /// The transaction's mode (`saga`, `tcc`, `msg`, `workflow`, …).
    public var transType: String
    /// The row's unique key.
    public var key: BarrierKey
    /// The op of the call that wrote the row (a compensation writes its action's row too).
    public var reason: String

    /// A row of the three parts.
    public init(transType: String, key: BarrierKey, reason: String) {
        self.transType = transType
        self.key = key
        self.reason = reason
    }
}

/// A database that holds dtm's barrier table and runs local transactions: what `BranchBarrier`
/// needs of one. `DTMBarrierPostgres` and `DTMBarrierSQLite` implement it; another database
/// needs these three operations.
public protocol BarrierDatabase: Sendable {
    /// A local transaction in progress: what business code runs its statements on.
    associatedtype Transaction

    /// Runs `body` in one local transaction: commits when it returns, rolls back when it throws
    /// and rethrows what `body` threw.
    func withTransaction<Result: Sendable>(_ body: (Transaction) async throws -> Result) async throws -> Result

    /// Inserts `row` unless a row with its key exists; true when it inserted one.
    func insertBarrier(_ row: BarrierRow, in transaction: Transaction) async throws -> Bool

    /// The reason of the row with `key`, nil when there is none.
    func reason(of key: BarrierKey, in transaction: Transaction) async throws -> String?
}

/// Checks a table name given to a barrier database, since it is put into SQL as it is: dtm's
/// `dtm_barrier.barrier` or any `[schema.]table` of ASCII letters, digits and underscores.
public func validatedBarrierTable(_ name: String) throws -> String {
    func isIdentifier(_ part: Substring) -> Bool {
        guard let first = part.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return part.utf8.allSatisfy { byte in
            byte == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
    }
    let parts = name.split(separator: ".", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count), parts.allSatisfy(isIdentifier) else { throw BarrierError.invalidTableName(name) }
    return name
}
