public import DTMWire
import Foundation
public import GRPCCore
public import SwiftProtobuf
import Synchronization

/// One run of a workflow: what its handler calls branches through. Steps are recorded in dtm
/// by branch id (`01`, `02`, … in the order `newBranch()` is called, the same in every run) and
/// op, so the handler must start its branches in the same order each time it runs.
public final class Workflow: Sendable {
    static let transType = "workflow"

    /// The workflow's registered name.
    public let name: String
    /// The transaction this run belongs to.
    public let gid: String
    let client: DtmClient
    let options: WorkflowOptions
    private let state: Mutex<State>

    struct State {
        var branches = 0
        /// Recorded outcomes by (branch id, op), as bytes.
        var progresses: [ProgressKey: Dtmgimp_DtmProgress] = [:]
        var actionsTaken: Set<[UInt8]> = []
        var commits: [(branchID: String, callback: WorkflowPhase2)] = []
        var rollbacks: [(branchID: String, callback: WorkflowPhase2)] = []
        var inPhase2 = false
    }

    struct ProgressKey: Hashable {
        let branchID: [UInt8]
        let op: [UInt8]
        init(_ branchID: String, _ op: String) {
            self.branchID = Array(branchID.utf8)
            self.op = Array(op.utf8)
        }
    }

    init(name: String, gid: String, client: DtmClient, options: WorkflowOptions, progresses: [Dtmgimp_DtmProgress]) {
        self.name = name
        self.gid = gid
        self.client = client
        self.options = options
        var state = State()
        for progress in progresses { state.progresses[ProgressKey(progress.branchID, progress.op)] = progress }
        self.state = Mutex(state)
    }

    /// Starts the next branch (ids 01, 02, …); not allowed in a phase-2 callback.
    public func newBranch() throws -> WorkflowBranch {
        let id = try state.withLock { state in
            guard !state.inPhase2 else { throw WorkflowError.misuse("newBranch() in a commit or rollback callback") }
            state.branches += 1
            return state.branches < 10 ? "0\(state.branches)" : String(state.branches)
        }
        return WorkflowBranch(id: id, workflow: self)
    }

    func addPhase2(_ callback: @escaping WorkflowPhase2, branchID: String, commit: Bool) {
        state.withLock { state in
            if commit { state.commits.append((branchID, callback)) } else { state.rollbacks.append((branchID, callback)) }
        }
    }

    /// Runs the action of `branchID` unless its outcome is recorded, and records its final
    /// outcome (success, or FAILURE); other errors are not recorded, so the action runs again on
    /// resume.
    func recordedAction(_ branchID: String, _ action: () async throws -> [UInt8]) async throws -> [UInt8] {
        try state.withLock { state in
            guard state.actionsTaken.insert(Array(branchID.utf8)).inserted else {
                throw WorkflowError.misuse("branch \(branchID) already has an action: one action per branch")
            }
        }
        do {
            return try await recorded(branchID, op: Op.action, action)
        } catch DtmError.failure(let message) {
            if !options.compensateErrorBranch {
                // A branch that failed did nothing, so there is nothing of it to roll back.
                state.withLock { state in
                    if state.rollbacks.last?.branchID == branchID { state.rollbacks.removeLast() }
                }
            }
            throw DtmError.failure(message)
        }
    }

    private func recorded(_ branchID: String, op: String, _ body: () async throws -> [UInt8]) async throws -> [UInt8] {
        if let progress = state.withLock({ $0.progresses[ProgressKey(branchID, op)] }) {
            if progress.status == WorkflowStatus.failed { throw DtmError.failure(String(decoding: progress.binData, as: UTF8.self)) }
            return [UInt8](progress.binData)
        }
        let result: [UInt8]
        do {
            result = try await body()
        } catch {
            let error = Self.dtmError(error)
            if case let .failure(message) = error as? DtmError, op == Op.action {
                try await record(branchID, op: op, status: WorkflowStatus.failed, Array(message.utf8))
            }
            throw error
        }
        try await record(branchID, op: op, status: WorkflowStatus.succeed, result)
        return result
    }

    private func record(_ branchID: String, op: String, status: String, _ data: [UInt8]) async throws {
        try await client.registerBranch(.with {
            $0.gid = gid
            $0.transType = Self.transType
            $0.branchID = branchID
            $0.busiPayload = Data(data)
            $0.data = ["status": status, "op": op]
        })
    }

    /// Phase 2: the commit callbacks after success, or the rollback callbacks after FAILURE, in
    /// reverse order of registration, each recorded once done. A callback that throws leaves the
    /// workflow unfinished (dtm resumes it): phase 2 must not fail, only be retried.
    func finishPhase2(rollingBack: Bool) async throws {
        let callbacks = state.withLock { state in
            state.inPhase2 = true
            return rollingBack ? state.rollbacks : state.commits
        }
        let op = rollingBack ? Op.rollback : Op.commit
        for (branchID, callback) in callbacks.reversed() {
            let context = BranchContext(gid: gid, transType: Self.transType, branchID: branchID, op: op, dtm: client.target)
            _ = try await recorded(branchID, op: op) {
                do {
                    try await callback(context)
                } catch DtmError.failure(let message) {
                    // dtm's Go SDK refuses FAILURE here too: a rollback cannot be rolled back.
                    throw WorkflowError.misuse("branch \(branchID) \(op) answered FAILURE (\(message)): phase 2 may only succeed or be retried")
                }
                return []
            }
        }
    }

    /// An error as dtm reads it: a gRPC Aborted is FAILURE, FailedPrecondition ONGOING.
    static func dtmError(_ error: any Error) -> any Error {
        guard let rpc = error as? RPCError else { return error }
        switch DtmResult(grpcCode: rpc.code) {
        case .failure: return DtmError.failure(rpc.message)
        case .ongoing: return DtmError.ongoing(rpc.message)
        case .success, .error: return error
        }
    }

    enum Op {
        static let action = "action"
        static let commit = "commit"
        static let rollback = "rollback"
    }
}

/// A branch of a running workflow: its phase-2 callbacks, then its one action — a gRPC branch
/// call or local code — whose outcome is recorded.
public struct WorkflowBranch: Sendable {
    /// The branch id (`01`, `02`, …).
    public let id: String
    let workflow: Workflow

    /// What to run if the workflow rolls back (a saga's compensation, a TCC's cancel). Give it
    /// before the action: it also runs when the action's outcome is unknown.
    public func onRollback(_ callback: @escaping WorkflowPhase2) -> WorkflowBranch {
        workflow.addPhase2(callback, branchID: id, commit: false)
        return self
    }

    /// What to run once the workflow succeeded (a TCC's confirm).
    public func onCommit(_ callback: @escaping WorkflowPhase2) -> WorkflowBranch {
        workflow.addPhase2(callback, branchID: id, commit: true)
        return self
    }

    /// One callback for both outcomes; `isRollback` tells which.
    public func onFinish(_ callback: @escaping @Sendable (BranchContext, _ isRollback: Bool) async throws -> Void) -> WorkflowBranch {
        onCommit { try await callback($0, false) }.onRollback { try await callback($0, true) }
    }

    /// The branch's action: calls the gRPC method `url` (`<server>/pkg.Svc/Method`) with
    /// `payload` and dtm's metadata, unless its outcome is recorded; returns the reply's bytes.
    @discardableResult
    public func call(_ url: String, _ payload: some BranchPayload) async throws -> [UInt8] {
        let bytes = try payload.payloadBytes()
        return try await workflow.recordedAction(id) {
            try await workflow.client.callBranch(url: url, payload: bytes, gid: workflow.gid, transType: Workflow.transType,
                                                 branchID: id, op: Workflow.Op.action)
        }
    }

    /// The branch's action as local code (dtm's `wf.Do`), given the branch's context; what it
    /// returns is recorded as the step's result.
    @discardableResult
    public func `do`(_ body: (BranchContext) async throws -> [UInt8]) async throws -> [UInt8] {
        let context = BranchContext(gid: workflow.gid, transType: Workflow.transType, branchID: id, op: Workflow.Op.action,
                                    dtm: workflow.client.target)
        return try await workflow.recordedAction(id) { try await body(context) }
    }
}

/// `workflow.Workflow/Execute`, through which dtm resumes an unfinished workflow: it runs the
/// workflow named by the call's `dtm-op` again, as transaction `dtm-gid`.
public struct WorkflowService: Workflow_Workflow.ServiceProtocol {
    let workflows: Workflows

    /// Resumes the workflow the call names; answers its outcome as dtm reads it.
    public func execute(
        request: ServerRequest<Workflow_WorkflowData>, context: ServerContext
    ) async throws -> ServerResponse<Google_Protobuf_Empty> {
        try await dtmBranch(request.metadata) { branch in
            guard let branch, !branch.gid.isEmpty, !branch.op.isEmpty else {
                throw RPCError(code: .invalidArgument, message: "dtm-gid and dtm-op (the workflow's name) are required")
            }
            try await workflows.execute(branch.op, gid: branch.gid, payload: [UInt8](request.message.data))
            return ServerResponse(message: Google_Protobuf_Empty())
        }
    }
}
