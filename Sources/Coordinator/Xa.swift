import Projections

/// XA: branches register a `rollback` and a `commit` while prepared (each has prepared its local
/// XA transaction). After submit, commit every branch in registration order; after abort or
/// timeout, roll every branch back in the same order. Both are retried until they succeed.
public enum Xa: TransactionMode {
    public static let transType = "xa"

    public static func failureIsFinal(op: String) -> Bool { false }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        twoPhaseDecision(state, now: now, commitOp: "commit", rollbackOp: "rollback", reverse: false)
    }
}
