import DTMWire
public import Projections

/// SAGA: run each step's `action` in order (or by `step_orders` when concurrent); when an action
/// answers FAILURE, the actions erred more than `retry_limit` times (dtm's RetryCount, retried at
/// once) or the transaction times out, move to aborting and run `compensate` in reverse for every
/// step whose action was attempted (including the failed one), then fail.
///
/// Branch ids are the 1-based step numbers `01`, `02`, …; each step has a `compensate` and an
/// `action` branch.
public enum SagaMode: TransactionMode {
    public static let transType = "saga"
    public static let stepOps = ["compensate", "action"]
    /// A saga has no timeout unless the request sets one.
    public static let timesOutByDefault = false

    public static func failureIsFinal(op: String) -> Bool { op == "action" }

    /// With a RetryLimit, dtm retries a submitted saga's erring action at once, in the same round.
    public static func decidesAfterEveryCall(_ state: TransactionState) -> Bool {
        state.status == .submitted && state.options.retryLimit > 0
    }

    /// dtm's rollback reason for an action that answered FAILURE.
    static func failureReason(_ failed: BranchState) -> String {
        "url:\(failed.url) return failed: \(failed.lastError) \(DtmResult.failure.rawValue)"
    }

    /// dtm's RetryCount: the action attempts that did not succeed, counted over all steps (dtm counts
    /// them per round, and with a RetryLimit a saga's forward phase is one round).
    static func retryCount(_ actions: [BranchState]) -> Int64 {
        actions.reduce(0) { count, action in
            count + Int64(action.attempts) - (action.succeeded && action.attempts > 0 ? 1 : 0)
        }
    }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        switch state.status {
        case .submitted:
            return forward(state, now: now)
        case .aborting:
            return backward(state)
        case .succeed, .failed:
            return .done
        case .prepared, .unspecified, .UNRECOGNIZED:
            return .wait(dueUs: 0)
        }
    }

    private static func forward(_ state: TransactionState, now: Int64) -> Step {
        if let reason = timeoutReason(state, now: now) { return .changeStatus(.aborting, reason: reason) }
        let actions = state.branches(op: "action")
        if let failed = actions.first(where: { $0.status == .failed }) {
            return .changeStatus(.aborting, reason: failureReason(failed))
        }
        let limit = state.options.retryLimit
        if limit > 0, retryCount(actions) > limit {
            return .changeStatus(.aborting, reason: "RetryCount is greater than RetryLimit, RetryLimit: \(limit)")
        }
        let pending = actions.filter { !$0.succeeded }
        if pending.isEmpty { return .changeStatus(.succeed, reason: "") }
        guard state.options.concurrent else { return .call([pending[0].ref]) }
        let succeededSteps = Set(actions.filter(\.succeeded).compactMap { stepIndex($0.branchID) })
        let predecessors = Dictionary(
            state.options.stepOrders.map { (Int($0.step), $0.after.map(Int.init)) }, uniquingKeysWith: { $1 })
        let ready = pending.filter { branch in
            guard let step = stepIndex(branch.branchID) else { return true }
            return (predecessors[step] ?? []).allSatisfy(succeededSteps.contains)
        }
        // Every pending step waits for a predecessor that has not succeeded yet: the running
        // ones are being retried, so the next round starts them.
        return .call((ready.isEmpty ? [pending[0]] : ready).map(\.ref))
    }

    private static func backward(_ state: TransactionState) -> Step {
        let attempted = Set(state.branches(op: "action").filter { $0.attempts > 0 || $0.status != .prepared }.map(\.branchID))
        let pending = state.branches(op: "compensate")
            .filter { attempted.contains($0.branchID) && !$0.succeeded }
            .reversed()
        return callPending(Array(pending), concurrently: state.options.concurrent)
            ?? .changeStatus(.failed, reason: "")
    }

    /// The 0-based step of branch id `01`, `02`, ….
    static func stepIndex(_ branchID: String) -> Int? {
        Int(branchID).flatMap { $0 > Int.min ? $0 - 1 : nil }
    }
}
