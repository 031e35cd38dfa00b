public import Projections

/// SAGA: run each step's `action` in order (or by `step_orders` when concurrent); when an action
/// answers FAILURE, gives up after `retry_limit` attempts or the transaction times out, move to
/// aborting and run `compensate` in reverse for every step whose action was attempted (including
/// the failed one), then fail.
///
/// Branch ids are the 1-based step numbers `01`, `02`, …; each step has a `compensate` and an
/// `action` branch.
public enum SagaMode: TransactionMode {
    public static let transType = "saga"
    public static let stepOps = ["compensate", "action"]
    /// A saga has no timeout unless the request sets one.
    public static let timesOutByDefault = false

    public static func failureIsFinal(op: String) -> Bool { op == "action" }

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
            let reason = failed.lastError.isEmpty ? "branch \(failed.branchID) action failed" : failed.lastError
            return .changeStatus(.aborting, reason: reason)
        }
        let limit = state.options.retryLimit
        if limit > 0, let exhausted = actions.first(where: { !$0.succeeded && Int64($0.attempts) >= limit }) {
            let last = exhausted.lastError.isEmpty ? "" : ": \(exhausted.lastError)"
            return .changeStatus(.aborting, reason: "branch \(exhausted.branchID) action retried \(exhausted.attempts) times, RetryLimit is \(limit)\(last)")
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
