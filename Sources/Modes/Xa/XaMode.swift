import Projections

/// XA: branches register a `rollback` and a `commit` while prepared (each has prepared its local
/// XA transaction). After submit, commit every branch in registration order; after abort or
/// timeout, roll every branch back in the same order. Both are retried until they succeed.
/// HTTP branches are always posted to, as dtm does for XA.
public enum XaMode: TwoPhaseMode {
    public static let transType = "xa"
    public static let postsEmptyPayload = true
    static let commitOp = "commit"
    static let rollbackOp = "rollback"
    static let runsInReverse = false

    /// One URL (`Data.url`) takes both ops; the op tells the branch which.
    static func url(for op: String, in request: BranchRegistrationRequest) -> (url: String, field: String) {
        (request.data["url"] ?? "", "Data.url")
    }
}
