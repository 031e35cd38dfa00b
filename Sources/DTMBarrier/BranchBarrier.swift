public import DTMClient
public import DTMWire
import Synchronization

/// dtm's sub-transaction barrier: makes a branch handler safe against the disorders of a
/// distributed transaction, with the same `barrier` table and rules as dtm's Go SDK, so a Swift
/// service can share a database with Go services that use dtm's barrier.
///
/// - A repeated call (dtm retries) runs the business code once.
/// - A null compensation (a compensation or cancel whose action or try never ran) does nothing.
/// - A hanging action (an action or try that arrives after its compensation) does nothing.
///
/// Make one per branch call, from the call's `BranchContext`, and run the business code with
/// `call(on:)` (the barrier opens the local transaction) or `call(in:)` (inside one of yours):
/// the barrier rows are written in the same local transaction as the business change, so both
/// commit or neither does.
public final class BranchBarrier: Sendable, CustomStringConvertible {
    /// The call's `trans_type`.
    public let transType: String
    /// The call's global transaction.
    public let gid: String
    /// The call's branch.
    public let branchID: String
    /// The call's op.
    public let op: String
    /// dtm numbers the barriers of one branch call 01, 02, … (one per `call`).
    private let calls = Mutex(0)

    /// A barrier for the branch call `context` describes; throws `BarrierError.invalidContext`
    /// when a field is missing (the call did not come from dtm).
    public convenience init(_ context: BranchContext?) throws {
        guard let context else { throw BarrierError.invalidContext("the call carries no dtm metadata (dtm-gid)") }
        try self.init(transType: context.transType, gid: context.gid, branchID: context.branchID, op: context.op)
    }

    /// A barrier for one branch call, given as dtm's four fields.
    public init(transType: String, gid: String, branchID: String, op: String) throws {
        for (name, value) in [("trans_type", transType), ("gid", gid), ("branch_id", branchID), ("op", op)] where value.isEmpty {
            throw BarrierError.invalidContext("\(name) is empty")
        }
        self.transType = transType
        self.gid = gid
        self.branchID = branchID
        self.op = op
    }

    public var description: String { "barrier \(transType) \(gid) \(branchID) \(op)" }

    /// Runs `body` in a new local transaction of `database`, behind the barrier; commits when it
    /// returns, rolls back when it throws. Returns what `body` returned, or nil when the barrier
    /// skipped it (a repeated call, a null compensation or a hanging action: dtm is answered
    /// success). Throws `BarrierError.duplicated` for a repeated msg local transaction.
    @discardableResult
    public func call<Database: BarrierDatabase, Result: Sendable>(
        on database: Database, _ body: (Database.Transaction) async throws -> Result
    ) async throws -> Result? {
        try await database.withTransaction { transaction in try await call(in: transaction, of: database, body) }
    }

    /// Runs `body` behind the barrier inside `transaction`, a local transaction of `database`
    /// that the caller commits (or rolls back when this throws). Returns nil when the barrier
    /// skipped `body`; the barrier rows are then still to be committed.
    @discardableResult
    public func call<Database: BarrierDatabase, Result: Sendable>(
        in transaction: Database.Transaction, of database: Database, _ body: (Database.Transaction) async throws -> Result
    ) async throws -> Result? {
        let barrierID = nextBarrierID()
        let originOp = BarrierOp.origin(of: op)
        var originInserted = false
        if let originOp {
            originInserted = try await database.insertBarrier(row(op: originOp, barrierID: barrierID), in: transaction)
        }
        let currentInserted = try await database.insertBarrier(row(op: op, barrierID: barrierID), in: transaction)
        if op == MsgLocalTransaction.op && !currentInserted { throw BarrierError.duplicated(gid) }
        let isNullCompensation = originOp != nil && originInserted
        if isNullCompensation || !currentInserted { return nil }
        return try await body(transaction)
    }

    /// Answers dtm's QueryPrepared for the msg `gid` from the barrier table, as dtm's Go
    /// `QueryPrepared` does: when the msg's local transaction has not committed, a rollback row
    /// is inserted in its place (so a late local transaction is refused) and this throws
    /// `DtmError.failure`, which tells dtm to abort the msg; when it has committed, it returns.
    public static func queryPrepared(gid: String, on database: some BarrierDatabase) async throws {
        guard !gid.isEmpty else { throw BarrierError.invalidContext("gid is empty") }
        let key = BarrierKey(gid: gid, branchID: MsgLocalTransaction.branchID, op: MsgLocalTransaction.op, barrierID: BarrierOp.msgBarrierID)
        let reason = try await database.withTransaction { transaction in
            _ = try await database.insertBarrier(BarrierRow(transType: "msg", key: key, reason: BarrierOp.rollback), in: transaction)
            return try await database.reason(of: key, in: transaction)
        }
        if reason == BarrierOp.rollback { throw DtmError.failure("msg \(gid): its local transaction was rolled back") }
    }

    /// The barrier of a msg's own local transaction (`Msg.doAndSubmit(_:queryPrepared:database:_:)`).
    static func msgLocalTransaction(gid: String) throws -> BranchBarrier {
        try BranchBarrier(transType: "msg", gid: gid, branchID: MsgLocalTransaction.branchID, op: MsgLocalTransaction.op)
    }

    private func nextBarrierID() -> String {
        let number = calls.withLock { count in
            count += 1
            return count
        }
        return number < 10 ? "0\(number)" : String(number)
    }

    private func row(op: String, barrierID: String) -> BarrierRow {
        BarrierRow(transType: transType, key: BarrierKey(gid: gid, branchID: branchID, op: op, barrierID: barrierID), reason: self.op)
    }
}

/// Why a barrier refused to run.
public enum BarrierError: Error, Equatable, CustomStringConvertible {
    /// The branch call's dtm fields are missing or empty.
    case invalidContext(String)
    /// The msg's local transaction already ran (dtm's ErrDuplicated).
    case duplicated(String)
    /// A barrier table name that is not `[schema.]table` of ASCII letters, digits and `_`.
    case invalidTableName(String)

    public var description: String {
        switch self {
        case let .invalidContext(reason): return "invalid branch context for the barrier: \(reason)"
        case let .duplicated(gid): return "DUPLICATED: the local transaction of msg \(gid) already ran"
        case let .invalidTableName(name): return "barrier table name \(name) is not [schema.]table of ASCII letters, digits and _"
        }
    }
}

/// dtm's op names as the barrier uses them, and the barrier id of a msg's local transaction.
enum BarrierOp {
    static let rollback = "rollback"
    /// The one barrier of a msg's local transaction.
    static let msgBarrierID = "01"

    /// The op whose barrier a compensation checks: try for cancel (TCC), action for compensate
    /// (SAGA) and rollback (workflow); nil for ops that compensate nothing.
    static func origin(of op: String) -> String? {
        switch op {
        case "cancel": return "try"
        case "compensate", rollback: return "action"
        default: return nil
        }
    }
}

extension Msg {
    /// `doAndSubmit` with the local transaction behind the msg's barrier, as dtm's Go
    /// `DoAndSubmitDB`: `body` runs in a local transaction of `database` that also records the
    /// msg, so `BranchBarrier.queryPrepared(gid:on:)`, served at `queryPrepared`, can tell dtm
    /// whether it committed; run twice, it throws `BarrierError.duplicated`.
    public func doAndSubmit<Database: BarrierDatabase>(
        _ client: DtmClient, queryPrepared: String, database: Database, _ body: (Database.Transaction) async throws -> Void
    ) async throws {
        let barrier = try BranchBarrier.msgLocalTransaction(gid: gid)
        try await doAndSubmit(client, queryPrepared: queryPrepared) { try await barrier.call(on: database, body) }
    }
}
