import DTMWire
import Projections

/// The shared shape of TCC and XA: no Steps; branches register a commit and a rollback op while
/// the transaction is prepared; it waits (until the timeout aborts it), then runs the commit op
/// of every branch after submit, or the rollback op after abort. Neither op's FAILURE is final.
protocol TwoPhaseMode: TransactionMode {
    /// The op run after submit (`confirm`, `commit`).
    static var commitOp: String { get }
    /// The op run after abort or timeout (`cancel`, `rollback`).
    static var rollbackOp: String { get }
    /// Whether the ops run from the last registered branch to the first.
    static var runsInReverse: Bool { get }
    /// The URL a registration gives `op`, with the request field it came from.
    static func url(for op: String, in request: BranchRegistrationRequest) -> (url: String, field: String)
}

extension TwoPhaseMode {
    public static var stepOps: [String] { [] }

    public static func failureIsFinal(op: String) -> Bool { false }

    public static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchRegistered] {
        try [rollbackOp, commitOp].map { op in
            let (url, field) = url(for: op, in: request)
            try RequestValidation.url(url, field: field)
            return BranchRegistered.with {
                $0.branch = BranchSpec.with {
                    $0.branchID = request.branchID
                    $0.op = op
                    $0.url = url
                    $0.payload = request.payload
                }
                $0.status = .prepared
            }
        }
    }

    /// A prepared transaction moves to aborting (and is rolled back); one already aborting stays so.
    public static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent] {
        switch state.status {
        case .prepared:
            return [.statusChanged(.with { $0.from = .prepared; $0.to = .aborting; $0.reason = reason; $0.byClient = true })]
        case .aborting:
            return []
        default:
            throw abortRefused(state)
        }
    }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        let phaseOp: String
        let finalStatus: TransactionStatus
        switch state.status {
        case .prepared:
            if let reason = timeoutReason(state, now: now) { return .changeStatus(.aborting, reason: reason) }
            return .wait(dueUs: timeoutDue(state))
        case .submitted:
            phaseOp = commitOp
            finalStatus = .succeed
        case .aborting:
            phaseOp = rollbackOp
            finalStatus = .failed
        case .succeed, .failed:
            return .done
        case .unspecified, .UNRECOGNIZED:
            return .wait(dueUs: 0)
        }
        let ordered = state.branches(op: phaseOp)
        let pending = (runsInReverse ? Array(ordered.reversed()) : ordered).filter { !$0.succeeded }
        return callPending(pending, concurrently: false) ?? .changeStatus(finalStatus, reason: "")
    }
}
