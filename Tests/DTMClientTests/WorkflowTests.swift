import DTMClient
import DTMClientTesting
import DTMWire
import Foundation
import GRPCCore
import GRPCProtobuf
import SwiftProtobuf
import Synchronization
import Testing

/// Swift workflows against dtm in process: recording, phase 2, replay, and dtm resuming an
/// unfinished workflow through `workflow.Workflow/Execute`.
@Suite struct WorkflowTests {
    @Test func aWorkflowCallsItsBranchesCommitsInReverseAndAnswersItsRecordedResult() async throws {
        try await withWorkflowHarness { dtm, busi, workflows, log in
            try workflows.register("transfer") { workflow, payload in
                try await workflow.newBranch().onCommit { context in log.add("commit \(context.branchID) \(context.op)") }
                    .call(busi.url("TransOut"), payload)
                try await workflow.newBranch().onCommit { context in log.add("commit \(context.branchID)") }
                    .call(busi.url("TransIn"), payload)
                let local = try await workflow.newBranch().do { context in Array("local \(context.branchID)".utf8) }
                return local
            }
            let gid = try await dtm.client.newGid()
            let result = try await workflows.execute("transfer", gid: gid, payload: [5])
            #expect(result == Array("local 03".utf8))
            #expect(try await dtm.status(of: gid) == "succeed")
            #expect(busi.calls.map(\.method) == ["TransOut", "TransIn"])
            #expect(busi.calls.map(\.payload) == [[5], [5]])
            #expect(busi.calls.first?.context == BranchContext(gid: gid, transType: "workflow", branchID: "01", op: "action", dtm: TestDtm.target))
            #expect(log.entries == ["commit 02", "commit 01 commit"])
            // Executed again: finished, so no branch is called and no callback run. (dtm sends no
            // result over gRPC, so the answer is empty, as with dtm's Go SDK.)
            #expect(try await workflows.execute("transfer", gid: gid, payload: [5]) == [])
            #expect(busi.calls.count == 2)
            #expect(log.entries.count == 2)
        }
    }

    @Test func aFailureRollsBackTheBranchesThatRanInReverse() async throws {
        try await withWorkflowHarness { dtm, busi, workflows, log in
            busi.plan("TransIn", [.failure])
            try workflows.register("transfer") { workflow, payload in
                try await workflow.newBranch().onRollback { context in log.add("rollback \(context.branchID) \(context.op)") }
                    .call(busi.url("TransOut"), payload)
                try await workflow.newBranch().onRollback { context in log.add("rollback \(context.branchID)") }
                    .call(busi.url("TransIn"), payload)
                Issue.record("TransIn's FAILURE must end the handler")
                return []
            }
            let gid = try await dtm.client.newGid()
            // The branch's gRPC message, as dtm reads it (its status text carries FAILURE).
            await #expect(throws: DtmError.failure("TransIn refused FAILURE")) { try await workflows.execute("transfer", gid: gid) }
            #expect(try await dtm.status(of: gid) == "failed")
            // TransIn failed, so it did nothing to roll back (dtm's CompensateErrorBranch false).
            #expect(log.entries == ["rollback 01 rollback"])
            // Executed again: the stored rollback reason.
            await #expect(throws: DtmError.failure("TransIn refused FAILURE")) { try await workflows.execute("transfer", gid: gid) }
            #expect(log.entries.count == 1)
        }
    }

    @Test func compensateErrorBranchRollsBackTheFailedBranchToo() async throws {
        try await withWorkflowHarness { dtm, busi, workflows, log in
            busi.plan("TransIn", [.failure])
            try workflows.register("transfer", options: WorkflowOptions(compensateErrorBranch: true)) { workflow, payload in
                try await workflow.newBranch().onRollback { context in log.add("rollback \(context.branchID)") }
                    .call(busi.url("TransOut"), payload)
                try await workflow.newBranch().onRollback { context in log.add("rollback \(context.branchID)") }
                    .call(busi.url("TransIn"), payload)
                return []
            }
            let gid = try await dtm.client.newGid()
            await #expect(throws: DtmError.self) { try await workflows.execute("transfer", gid: gid) }
            #expect(log.entries == ["rollback 02", "rollback 01"])
        }
    }

    @Test func dtmResumesAnUnfinishedWorkflowWithoutRepeatingRecordedSteps() async throws {
        try await withWorkflowHarness { dtm, busi, workflows, log in
            busi.plan("TransIn", [.error])
            try workflows.register("transfer") { workflow, payload in
                try await workflow.newBranch().call(busi.url("TransOut"), payload)
                try await workflow.newBranch().onCommit { context in log.add("commit \(context.branchID)") }
                    .call(busi.url("TransIn"), payload)
                return Array("done".utf8)
            }
            let gid = try await dtm.client.newGid()
            await #expect(throws: RPCError.self) { try await workflows.execute("transfer", gid: gid, payload: [9]) }
            #expect(try await dtm.status(of: gid) == "prepared")
            // dtm calls the application back (workflow.Workflow/Execute) once the workflow is due.
            try await dtm.advance(by: .seconds(60))
            try await dtm.waitForStatus(gid, "succeed")
            #expect(busi.calls.map(\.method) == ["TransOut", "TransIn", "TransIn"])
            #expect(busi.calls.last?.payload == [9])
            #expect(log.entries == ["commit 02"])
            #expect(try await workflows.execute("transfer", gid: gid) == [])
        }
    }

    @Test func misuseIsAnErrorNotATrap() async throws {
        try await withWorkflowHarness { dtm, busi, workflows, _ in
            try workflows.register("twice") { workflow, _ in
                let branch = try workflow.newBranch()
                try await branch.call(busi.url("TransOut"), [UInt8]())
                try await branch.call(busi.url("TransIn"), [UInt8]())
                return []
            }
            #expect(throws: WorkflowError.misuse("a workflow named twice is already registered")) {
                try workflows.register("twice") { _, _ in [] }
            }
            await #expect(throws: WorkflowError.misuse("branch 01 already has an action: one action per branch")) {
                try await workflows.execute("twice", gid: try await dtm.client.newGid())
            }
            await #expect(throws: WorkflowError.misuse("workflow nameless is not registered: register it at startup")) {
                try await workflows.execute("nameless", gid: "g")
            }
        }
    }
}

/// What the workflow callbacks ran, in order.
final class CallbackLog: Sendable {
    private let recorded = Mutex<[String]>([])
    func add(_ entry: String) { recorded.withLock { $0.append(entry) } }
    var entries: [String] { recorded.withLock { $0 } }
}

/// dtm in process with a `busi.Busi` branch service, and workflows whose callback service is
/// served to dtm next to it.
func withWorkflowHarness(_ body: (TestDtm, ScriptedBranches, Workflows, CallbackLog) async throws -> Void) async throws {
    let busi = ScriptedBranches(service: "busi.Busi", methods: ["TransOut", "TransIn"])
    let callback = WorkflowCallback()
    try await withTestDtm(branches: [busi, callback]) { dtm in
        let workflows = Workflows(client: dtm.client, callbackHost: "app:1")
        callback.workflows.withLock { $0 = workflows }
        try await body(dtm, busi, workflows, CallbackLog())
    }
}

/// The application's `workflow.Workflow` service, given to the test dtm before the workflows
/// (which need the dtm's client) exist.
final class WorkflowCallback: RegistrableRPCService, Sendable {
    let workflows = Mutex<Workflows?>(nil)

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Workflow_Workflow.Method.Execute.descriptor,
            deserializer: ProtobufDeserializer<Workflow_WorkflowData>(), serializer: ProtobufSerializer<Google_Protobuf_Empty>()
        ) { request, context in
            guard let workflows = self.workflows.withLock({ $0 }) else { throw RPCError(code: .unavailable, message: "not ready") }
            let message = try await request.messages.reduce(into: [Workflow_WorkflowData]()) { $0.append($1) }
            let response = try await workflows.service.execute(
                request: ServerRequest(metadata: request.metadata, message: message.first ?? Workflow_WorkflowData()), context: context)
            return StreamingServerResponse(single: response)
        }
    }
}
