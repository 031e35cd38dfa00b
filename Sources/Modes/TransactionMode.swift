public import DTMWire
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
    /// dtm's name of the mode (`saga`, `msg`, `tcc`, `xa`, `workflow`).
    static var transType: String { get }

    // MARK: Creation

    /// The ops each entry of the request's Steps becomes, in order (branch ids `01`, `02`, …);
    /// empty when the mode takes no Steps (its branches are registered later).
    static var stepOps: [String] { get }
    /// Whether the server's default TimeoutToFail applies when the request sets none.
    static var timesOutByDefault: Bool { get }
    /// Branches the mode adds besides the Steps (msg: QueryPrepared; workflow: its callback).
    static func extraBranches(_ request: TransactionRequest) throws -> [BranchSpec]
    /// Whether `branch` is one of the mode's bookkeeping branches (`extraBranches`), which dtm's
    /// `query` does not list (the history and the audit do).
    static func isBookkeeping(_ branch: BranchState) -> Bool
    /// When a transaction created prepared is first looked at (µs; 0 = not scheduled) and the
    /// retry interval it starts with, from the request and its resolved `options`.
    static func preparedSchedule(
        _ request: TransactionRequest, options: TransactionOptions, defaults: TransactionDefaults, now: Int64
    ) -> (dueUs: Int64, retryInterval: Int64)
    /// Whether an action `topic://<name>` is sent to the topic's subscribers (msg).
    static var expandsTopics: Bool { get }

    // MARK: Client commands

    /// The events a Prepare records on `existing` (nil: a new transaction): by default the
    /// transaction is created, and a repeat while prepared changes nothing.
    static func prepare(_ created: TransactionCreated, onto existing: TransactionState?) throws -> [TransactionEvent]
    /// The events a Submit records on `existing` at `now`: by default a prepared transaction is
    /// submitted, a new one created submitted, a submitted one made due now.
    static func submit(_ created: TransactionCreated, onto existing: TransactionState?, now: Int64) throws -> [TransactionEvent]
    /// The branches a RegisterBranch request adds, each with its status; InvalidArgument when the
    /// mode takes none.
    static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchRegistered]
    /// The events registering `branches` on the prepared `state` records: by default only the
    /// branches not registered yet (a repeat changes nothing).
    static func register(_ branches: [BranchRegistered], on state: TransactionState) throws -> [TransactionEvent]
    /// The events an Abort of `state` records (none: already rolling back); FAILURE when the
    /// mode or the status does not allow it.
    static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent]

    // MARK: Driving

    /// The next step for `state` at time `now` (µs since 1970). The same state and time give
    /// the same step, so the audit can re-derive every decision from the log.
    static func decide(_ state: TransactionState, now: Int64) -> Step
    /// Whether a FAILURE answer from `op` is final (the mode then moves on) rather than retried.
    static func failureIsFinal(op: String) -> Bool
    /// Whether the mode decides again right after every set of calls of `state`, whatever they
    /// answered, instead of the retry schedule taking over when a call did not succeed (dtm's saga
    /// with a RetryLimit retries at once; a workflow ignores its callback's answer).
    static func decidesAfterEveryCall(_ state: TransactionState) -> Bool
    /// Whether an HTTP branch call posts even an empty payload (otherwise it is a GET).
    static var postsEmptyPayload: Bool { get }
}

extension TransactionMode {
    public static var timesOutByDefault: Bool { true }
    public static func extraBranches(_ request: TransactionRequest) throws -> [BranchSpec] { [] }
    public static func isBookkeeping(_ branch: BranchState) -> Bool { false }
    public static func preparedSchedule(
        _ request: TransactionRequest, options: TransactionOptions, defaults: TransactionDefaults, now: Int64
    ) -> (dueUs: Int64, retryInterval: Int64) {
        (options.timeoutToFail > 0 ? Microseconds.after(seconds: options.timeoutToFail, from: now) : 0, options.retryInterval)
    }
    public static var expandsTopics: Bool { false }
    public static var postsEmptyPayload: Bool { false }
    public static func decidesAfterEveryCall(_ state: TransactionState) -> Bool { false }

    public static func prepare(_ created: TransactionCreated, onto existing: TransactionState?) throws -> [TransactionEvent] {
        guard let existing else { return [.created(created)] }
        guard existing.status == .prepared else {
            throw RequestError.failure("current status '\(existing.status.dtmName)', cannot prepare.")
        }
        return []
    }

    public static func submit(_ created: TransactionCreated, onto existing: TransactionState?, now: Int64) throws -> [TransactionEvent] {
        guard let existing else { return [.created(created)] }
        switch existing.status {
        case .prepared:
            return [
                .statusChanged(.with { $0.from = .prepared; $0.to = .submitted; $0.byClient = true }),
                .retryScheduled(.with { $0.dueUs = created.nextDueUs; $0.retryInterval = existing.retryInterval }),
            ]
        case .submitted:
            // dtm runs a new round at once (the coordinator does, on the stored branches): one
            // waiting for its retry time is due now.
            guard existing.nextDueUs > now else { return [] }
            return [.retryScheduled(.with { $0.dueUs = now; $0.retryInterval = existing.retryInterval })]
        default:
            // dtm's text, spelling included.
            throw RequestError.failure("current status '\(existing.status.dtmName)', cannot sumbmit.")
        }
    }

    public static func register(_ branches: [BranchRegistered], on state: TransactionState) throws -> [TransactionEvent] {
        branches
            .filter { state.branch(id: $0.branch.branchID, op: $0.branch.op) == nil }
            .map { .branchRegistered($0) }
    }

    public static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchRegistered] {
        throw RequestError.invalidArgument("TransType '\(transType)' does not register branches; expected tcc, xa or workflow")
    }

    public static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent] {
        throw abortRefused(state)
    }
}

/// The registry of modes by dtm's trans type name.
public enum TransactionModes {
    /// Every mode the coordinator drives.
    public static let all: [any TransactionMode.Type] = [SagaMode.self, MsgMode.self, TccMode.self, XaMode.self, WorkflowMode.self]

    /// The mode of `transType`; nil for an unknown type.
    public static func mode(_ transType: String) -> (any TransactionMode.Type)? {
        all.first { $0.transType == transType }
    }

    /// The branches dtm's `query` lists: the stored ones, without the mode's bookkeeping branches
    /// (msg's QueryPrepared, which the history and the audit still show).
    public static func listedBranches(of state: TransactionState) -> [BranchState] {
        guard let mode = mode(state.transType) else { return state.branches }
        return state.branches.filter { !mode.isBookkeeping($0) }
    }

    /// The mode of a request's `transType`; InvalidArgument for an unknown one.
    public static func requested(_ transType: String) throws -> any TransactionMode.Type {
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
