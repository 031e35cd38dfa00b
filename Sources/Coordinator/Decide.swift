import Projections

/// One branch operation of a transaction: its id and op (`01`/`action`, `02`/`confirm`, …).
public struct BranchRef: Hashable, Sendable, CustomStringConvertible {
    public let branchID: String
    public let op: String

    public init(_ branchID: String, _ op: String) {
        self.branchID = branchID
        self.op = op
    }

    public var description: String { "\(branchID)/\(op)" }
}

/// What the coordinator should do next with a transaction, decided from its state alone.
public enum Step: Equatable, Sendable {
    /// Call these branches now (concurrently), record the outcomes, then decide again.
    case call([BranchRef])
    /// Move the global status, then decide again.
    case changeStatus(TransactionStatus, reason: String)
    /// Nothing to do until `dueUs` (µs since 1970; 0 = until a client request moves it).
    case wait(dueUs: Int64)
    /// The transaction is finished.
    case done
}

/// The decision of one transaction mode. Pure: the same state and time give the same step, so
/// the replay tool can re-derive every decision from the log.
public protocol TransactionMode {
    /// dtm's name of the mode (`saga`, `msg`, `tcc`, `xa`).
    static var transType: String { get }
    /// The next step for `state` at time `now` (µs since 1970).
    static func decide(_ state: TransactionState, now: Int64) -> Step
    /// Whether a FAILURE answer from `op` is final (the mode then moves on) rather than retried.
    static func failureIsFinal(op: String) -> Bool
}

/// The modes by dtm's trans type name.
public enum Modes {
    /// Every mode the coordinator drives.
    public static let all: [any TransactionMode.Type] = [Saga.self, Msg.self, Tcc.self, Xa.self]

    /// The mode of `transType`; nil for an unknown type.
    public static func mode(_ transType: String) -> (any TransactionMode.Type)? {
        all.first { $0.transType == transType }
    }

    /// The next step for `state`: its mode's decision, or `done` for a type no mode drives.
    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        guard let mode = mode(state.transType) else { return .done }
        return mode.decide(state, now: now)
    }
}

/// `Timeout after N seconds` once a transaction with a timeout is older than it.
func timeoutReason(_ state: TransactionState, now: Int64) -> String? {
    let seconds = state.options.timeoutToFail
    guard seconds > 0, now >= timeoutDue(state) else { return nil }
    return "Timeout after \(seconds) seconds"
}

/// When the transaction's timeout expires (µs); 0 when it has none.
func timeoutDue(_ state: TransactionState) -> Int64 {
    let seconds = state.options.timeoutToFail
    guard seconds > 0 else { return 0 }
    return Microseconds.after(seconds: seconds, from: state.createTimeUs)
}

extension TransactionState {
    /// The branches with `op`, in registration order.
    func branches(op: String) -> [BranchState] {
        branches.filter { $0.op == op }
    }
}

extension BranchState {
    var ref: BranchRef { BranchRef(branchID, op) }
    var succeeded: Bool { status == .succeed }
}

/// Calls the first of `pending` (one at a time) or all of them (concurrently).
func callPending(_ pending: [BranchState], concurrently: Bool) -> Step? {
    guard let first = pending.first else { return nil }
    return .call(concurrently ? pending.map(\.ref) : [first.ref])
}
