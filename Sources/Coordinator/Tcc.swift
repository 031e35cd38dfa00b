import Projections

/// TCC: branches register a `cancel` and a `confirm` while prepared (the client calls Try itself).
/// After submit, confirm every branch in reverse registration order; after abort or timeout,
/// cancel every branch in reverse order. Confirm and cancel are retried until they succeed.
public enum Tcc: TransactionMode {
    public static let transType = "tcc"

    public static func failureIsFinal(op: String) -> Bool { false }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        twoPhaseDecision(state, now: now, commitOp: "confirm", rollbackOp: "cancel", reverse: true)
    }
}

/// The shared shape of TCC and XA: wait while prepared (until the timeout aborts it), then run
/// the commit op of every branch after submit, or the rollback op after abort.
func twoPhaseDecision(_ state: TransactionState, now: Int64, commitOp: String, rollbackOp: String, reverse: Bool) -> Step {
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
    let pending = (reverse ? Array(ordered.reversed()) : ordered).filter { !$0.succeeded }
    return callPending(pending, concurrently: false) ?? .changeStatus(finalStatus, reason: "")
}
