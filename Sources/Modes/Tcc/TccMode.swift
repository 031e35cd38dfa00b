import Projections

/// TCC: branches register a `cancel` and a `confirm` while prepared (the client calls Try itself).
/// After submit, confirm every branch in reverse registration order; after abort or timeout,
/// cancel every branch in reverse order. Confirm and cancel are retried until they succeed.
public enum TccMode: TwoPhaseMode {
    public static let transType = "tcc"
    static let commitOp = "confirm"
    static let rollbackOp = "cancel"
    static let runsInReverse = true

    /// Each registered branch gives its own confirm and cancel URLs (`Data.confirm`, `Data.cancel`).
    static func url(for op: String, in request: BranchRegistrationRequest) -> (url: String, field: String) {
        (request.data[op] ?? "", "Data.\(op)")
    }
}
