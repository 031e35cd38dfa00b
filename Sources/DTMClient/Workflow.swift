public import DTMWire
import Foundation
import GRPCCore
import Synchronization

/// The workflows an application runs, registered by name: dtm's Go `workflow` package. A
/// workflow is ordinary code that calls branches; each step's final outcome is recorded in dtm,
/// so after a crash the same code runs again and the recorded steps are answered from the record
/// instead of being called. dtm resumes an unfinished workflow by calling the application back:
/// mount `service` on the application's gRPC server at `callbackHost`.
///
/// ```swift
/// let workflows = Workflows(client: client, callbackHost: "localhost:8080")
/// try workflows.register("transfer") { workflow, payload in
///     try await workflow.newBranch()
///         .onRollback { _ in try await refund(payload) }
///         .call("busi:8081/busi.Busi/TransOut", payload)
///     try await workflow.newBranch().call("busi:8081/busi.Busi/TransIn", payload)
///     return []
/// }
/// try await workflows.execute("transfer", gid: try await client.newGid(), payload: payload)
/// ```
public final class Workflows: Sendable {
    let client: DtmClient
    /// Where dtm calls the application back to resume a workflow (`<host>/workflow.Workflow/Execute`).
    public let callback: String
    private let handlers = Mutex<[String: Registration]>([:])

    struct Registration: Sendable {
        let options: WorkflowOptions
        let handler: WorkflowHandler
    }

    /// Workflows that talk to dtm through `client` over gRPC; `callbackHost` is the `host:port`
    /// where the application serves `service`, as dtm should dial it (Go's `InitGrpc`).
    public init(client: DtmClient, callbackHost: String) {
        self.client = client
        self.callback = callbackHost + "/" + Workflow_Workflow.Method.Execute.descriptor.fullyQualifiedMethod
    }

    /// Workflows that talk to dtm's HTTP API through `client` (Go's `InitHTTP`); dtm resumes a
    /// workflow by calling `callbackURL` (with gid, trans_type, branch_id 00 and op = the
    /// workflow's name as query parameters, the input as the body), which the application
    /// serves with `execute(name: op, gid:, payload: body)` (`DTMClientHummingbird`'s
    /// `dtmWorkflowCallback` does that).
    public init(client: DtmClient, callbackURL: String) {
        self.client = client
        self.callback = callbackURL
    }

    /// Registers `handler` as the workflow `name` (once per name, at startup: dtm resumes a
    /// workflow by its name). It returns the workflow's result; throwing `DtmError.failure` rolls
    /// it back, other errors leave it for dtm to resume.
    public func register(_ name: String, options: WorkflowOptions = WorkflowOptions(), _ handler: @escaping WorkflowHandler) throws {
        try handlers.withLock { handlers in
            guard handlers[name] == nil else { throw WorkflowError.misuse("a workflow named \(name) is already registered") }
            handlers[name] = Registration(options: options, handler: handler)
        }
    }

    /// Runs the workflow `name` as transaction `gid` with `payload`, or resumes it when `gid`
    /// exists: recorded steps are not called again, a finished workflow answers its recorded
    /// outcome. Returns the handler's result; throws `DtmError.failure` when it was rolled back,
    /// and other errors when it is unfinished (dtm calls `callback` later to resume it). Over
    /// gRPC dtm does not send a finished workflow's result, so executing a workflow that already
    /// succeeded answers an empty result, as with dtm's Go SDK.
    @discardableResult
    public func execute(_ name: String, gid: String, payload: [UInt8] = []) async throws -> [UInt8] {
        guard let registration = handlers.withLock({ $0[name] }) else {
            throw WorkflowError.misuse("workflow \(name) is not registered: register it at startup")
        }
        let request = try prepareRequest(name: name, gid: gid, payload: payload, options: registration.options)
        let reply = try await client.prepareWorkflow(request)
        switch reply.transaction.status {
        case WorkflowStatus.succeed:
            return [UInt8](Data(base64Encoded: reply.transaction.result) ?? Data())
        case WorkflowStatus.failed:
            throw DtmError.failure(reply.transaction.rollbackReason)
        default:
            break
        }
        let workflow = Workflow(name: name, gid: gid, client: client, options: registration.options, progresses: reply.progresses)
        let outcome: Result<[UInt8], any Error>
        do {
            outcome = .success(try await registration.handler(workflow, payload))
        } catch {
            let failure = Workflow.dtmError(error)
            guard case .failure = failure as? DtmError else { throw failure }  // unfinished: dtm resumes it
            outcome = .failure(failure)
        }
        try await workflow.finishPhase2(rollingBack: (try? outcome.get()) == nil)
        try await submit(request, outcome)
        return try outcome.get()
    }

    /// The `workflow.Workflow` service dtm calls to resume a workflow: mount it on the
    /// application's gRPC server at `callbackHost`.
    public var service: WorkflowService { WorkflowService(workflows: self) }

    private func prepareRequest(name: String, gid: String, payload: [UInt8], options: WorkflowOptions) throws -> Dtmgimp_DtmRequest {
        // dtm's SDK sends {"name": …, "data": <base64 of the input, null without one>}.
        let custom: [String: Any] = ["name": name, "data": payload.isEmpty ? NSNull() : Data(payload).base64EncodedString()]
        let customJSON = String(decoding: try JSONSerialization.data(withJSONObject: custom, options: [.sortedKeys]), as: UTF8.self)
        return .with {
            $0.gid = gid
            $0.transType = Workflow.transType
            $0.transOptions = options.transOptions
            $0.customedData = customJSON
            $0.queryPrepared = callback
            $0.steps = "null"
        }
    }

    private func submit(_ prepared: Dtmgimp_DtmRequest, _ outcome: Result<[UInt8], any Error>) async throws {
        var request = prepared
        switch outcome {
        case let .success(result):
            request.reqExtra = ["status": WorkflowStatus.succeed, "rollback_reason": "", "result": Data(result).base64EncodedString()]
        case let .failure(error):
            let reason = if case let .failure(message) = error as? DtmError { message } else { "\(error)" }
            request.reqExtra = ["status": WorkflowStatus.failed, "rollback_reason": reason, "result": ""]
        }
        try await client.send(.submit, request)
    }
}

/// A workflow's code: given the workflow in progress and its input, returns its result.
public typealias WorkflowHandler = @Sendable (Workflow, [UInt8]) async throws -> [UInt8]

/// A phase-2 callback (commit or rollback) of a workflow branch, given the branch's context
/// (op `commit` or `rollback`), from which `BranchBarrier` makes it safe to repeat.
public typealias WorkflowPhase2 = @Sendable (BranchContext) async throws -> Void

/// How a registered workflow runs (dtm's `workflow.Options` and the transaction's options).
public struct WorkflowOptions: Sendable {
    /// Also roll back a branch whose action answered FAILURE (dtm's CompensateErrorBranch): for
    /// a branch that may have done its work although it failed (a timeout, say).
    public var compensateErrorBranch = false
    /// The transaction's options; 0 / empty = the server's defaults.
    public var transOptions = TransOptions()

    /// Options with these values.
    public init(compensateErrorBranch: Bool = false, transOptions: TransOptions = TransOptions()) {
        self.compensateErrorBranch = compensateErrorBranch
        self.transOptions = transOptions
    }
}

/// A workflow used against its rules (a second action in one branch, a branch started in
/// phase 2, a name registered twice): a programming error, reported instead of trapping.
public enum WorkflowError: Error, Equatable, CustomStringConvertible {
    case misuse(String)

    public var description: String {
        switch self {
        case let .misuse(message): return "workflow misuse: \(message)"
        }
    }
}

/// The statuses dtm stores for a workflow and its recorded steps.
enum WorkflowStatus {
    static let succeed = "succeed"
    static let failed = "failed"
}
