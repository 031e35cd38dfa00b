import DTMWire
public import Projections

/// MSG (two-phase message): once submitted, run every `action` until all succeed; it is never
/// rolled back. While prepared and older than its timeout, ask the application through
/// QueryPrepared (branch `00`, op `msg`): SUCCESS submits it, FAILURE fails it, ONGOING waits.
public enum MsgMode: TransactionMode {
    public static let transType = "msg"
    public static let stepOps = ["action"]
    public static let expandsTopics = true
    /// The branch id and op under which QueryPrepared calls are recorded.
    public static let queryPrepared = BranchRef(MsgLocalTransaction.branchID, MsgLocalTransaction.op)

    public static func extraBranches(_ request: TransactionRequest) throws -> [BranchSpec] {
        guard !request.queryPrepared.isEmpty else { return [] }
        return [BranchSpec.with {
            $0.branchID = queryPrepared.branchID
            $0.op = queryPrepared.op
            $0.url = request.queryPrepared
        }]
    }

    public static func isBookkeeping(_ branch: BranchState) -> Bool {
        branch.branchID == queryPrepared.branchID && branch.op == queryPrepared.op
    }

    /// A prepared message that the application gives up on fails; nothing was called yet.
    public static func abort(_ state: TransactionState, reason: String) throws -> [TransactionEvent] {
        guard state.status == .prepared else {
            throw abortRefused(state)
        }
        return [.statusChanged(.with { $0.from = .prepared; $0.to = .failed; $0.reason = reason; $0.byClient = true })]
    }

    public static func failureIsFinal(op: String) -> Bool { op == queryPrepared.op }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        switch state.status {
        case .prepared:
            if let query = state.branch(id: queryPrepared.branchID, op: queryPrepared.op) {
                if query.status == .succeed { return .changeStatus(.submitted, reason: "") }
                if query.status == .failed {
                    let reason = query.lastError.isEmpty ? "QueryPrepared answered FAILURE" : query.lastError
                    return .changeStatus(.failed, reason: reason)
                }
            }
            let due = timeoutDue(state)
            guard due > 0, now >= due else { return .wait(dueUs: due) }
            guard state.branch(id: queryPrepared.branchID, op: queryPrepared.op) != nil else {
                // No QueryPrepared URL: nothing can resolve it but a client's submit or abort.
                return .wait(dueUs: 0)
            }
            return .call([queryPrepared])
        case .submitted:
            let pending = state.branches(op: "action").filter { !$0.succeeded }
            return callPending(pending, concurrently: state.options.concurrent) ?? .changeStatus(.succeed, reason: "")
        case .aborting:
            return .changeStatus(.failed, reason: "")
        case .succeed, .failed:
            return .done
        case .unspecified, .UNRECOGNIZED:
            return .wait(dueUs: 0)
        }
    }
}
