import ByteIdentity
import DTMWire
public import Projections

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

/// Everything one transaction mode (dtm's trans type) means, in one place and pure: how a request
/// creates its branches, which client commands it accepts, what to do next, which failures are
/// final and how its branches are called. The coordinator asks the mode and records the answer;
/// the audit asks it again to check the log.
///
/// A new mode is a folder under `Sources/Modes` with a type conforming to this protocol and one
/// line in `TransactionModes.all`.
public protocol TransactionMode: Sendable {
    /// dtm's name of the mode (`saga`, `msg`, `tcc`, `xa`).
    static var transType: String { get }

    // MARK: Creation

    /// The ops each entry of the request's Steps becomes, in order (branch ids `01`, `02`, …);
    /// empty when the mode takes no Steps (its branches are registered later).
    static var stepOps: [String] { get }
    /// Whether the server's default TimeoutToFail applies when the request sets none.
    static var timesOutByDefault: Bool { get }
    /// Branches the mode adds besides the Steps (msg: QueryPrepared).
    static func extraBranches(queryPrepared: String) -> [BranchSpec]
    /// Whether an action `topic://<name>` is sent to the topic's subscribers (msg).
    static var expandsTopics: Bool { get }

    // MARK: Client commands

    /// The branches a RegisterBranch request adds; InvalidArgument when the mode takes none.
    static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchSpec]
    /// The events an Abort of `state` records (none: already rolling back); FAILURE when the
    /// mode or the status does not allow it.
    static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent]

    // MARK: Driving

    /// The next step for `state` at time `now` (µs since 1970). The same state and time give
    /// the same step, so the audit can re-derive every decision from the log.
    static func decide(_ state: TransactionState, now: Int64) -> Step
    /// Whether a FAILURE answer from `op` is final (the mode then moves on) rather than retried.
    static func failureIsFinal(op: String) -> Bool
    /// Whether calls of `state` that did not succeed are decided on again at once, in the same
    /// round, instead of on the retry schedule (dtm's saga with a RetryLimit).
    static func retriesAtOnce(_ state: TransactionState) -> Bool
    /// Whether an HTTP branch call posts even an empty payload (otherwise it is a GET).
    static var postsEmptyPayload: Bool { get }
}

extension TransactionMode {
    public static var timesOutByDefault: Bool { true }
    public static func extraBranches(queryPrepared: String) -> [BranchSpec] { [] }
    public static var expandsTopics: Bool { false }
    public static var postsEmptyPayload: Bool { false }
    public static func retriesAtOnce(_ state: TransactionState) -> Bool { false }

    public static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchSpec] {
        throw RequestError.invalidArgument("TransType '\(transType)' does not register branches; expected tcc or xa")
    }

    public static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent] {
        throw abortRefused(state)
    }
}

/// The registry of modes by dtm's trans type name.
public enum TransactionModes {
    /// Every mode the coordinator drives.
    public static let all: [any TransactionMode.Type] = [SagaMode.self, MsgMode.self, TccMode.self, XaMode.self]

    /// dtm's trans types this server knows of but does not drive yet.
    static let notYetSupported: Set<String> = ["workflow"]

    /// The mode of `transType`; nil for an unknown type.
    public static func mode(_ transType: String) -> (any TransactionMode.Type)? {
        all.first { $0.transType == transType }
    }

    /// The branches dtm's `query` lists: the stored ones, without the mode's bookkeeping branches
    /// (msg's QueryPrepared, which the history and the audit still show).
    public static func listedBranches(of state: TransactionState) -> [BranchState] {
        guard let mode = mode(state.transType) else { return state.branches }
        let bookkeeping = mode.extraBranches(queryPrepared: state.queryPrepared)
        return state.branches.filter { branch in
            !bookkeeping.contains { $0.branchID.hasSameBytes(as: branch.branchID) && $0.op.hasSameBytes(as: branch.op) }
        }
    }

    /// The mode of a request's `transType`; Unimplemented for one dtm has and this server does
    /// not yet, InvalidArgument for any other.
    public static func requested(_ transType: String) throws -> any TransactionMode.Type {
        if notYetSupported.contains(transType) {
            throw RequestError.unimplemented("TransType '\(transType)' is not supported by this server yet")
        }
        guard let mode = mode(transType) else {
            throw RequestError.invalidArgument("TransType '\(transType)' is unknown; expected one of \(all.map { $0.transType }.joined(separator: ", "))")
        }
        return mode
    }
}

/// The refusal of an Abort the mode or the status does not allow.
func abortRefused(_ state: TransactionState) -> RequestError {
    .failure("trans type: '\(state.transType)' current status '\(state.status.dtmName)', cannot abort.")
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
