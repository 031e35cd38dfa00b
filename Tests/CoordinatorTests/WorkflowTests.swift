import DTMWire
import Foundation
@testable import Modes
import Projections
import Testing

@Suite struct WorkflowTests {
    func request(gid: String = "wf", input: Data? = Data("in".utf8), callback: String = "h:1/busi.Busi/Wf") -> TransactionRequest {
        var request = TransactionRequest()
        request.gid = gid
        request.transType = "workflow"
        request.steps = "null"
        let data = input.map { "\"\($0.base64EncodedString())\"" } ?? "null"
        request.customData = #"{"name":"transfer","data":\#(data)}"#
        request.queryPrepared = callback
        return request
    }

    func prepared(_ request: TransactionRequest, now: Int64 = 1_000_000) throws -> TransactionState {
        var defaults = TransactionDefaults()
        defaults.retryInterval = 10
        let created = try TransactionCreation.created(request, status: .prepared, defaults: defaults, now: now)
        return try #require(apply(RecordedEvent(seq: 1, time: now, gid: request.gid, event: .created(created)), to: nil))
    }

    @Test func prepareStoresTheCallbackWithDtmsFirstDueTime() throws {
        var wf = request()
        let state = try prepared(wf)
        #expect(state.status == .prepared)
        #expect(state.nextDueUs == 11_000_000, "no RetryInterval or TimeoutToFail: the server's RetryInterval")
        #expect(state.retryInterval == 10)
        let callback = try #require(state.branch(id: "00", op: "transfer"))
        #expect(callback.url == "h:1/busi.Busi/Wf")
        #expect(try Workflow_WorkflowData(serializedBytes: callback.payload).data == Data("in".utf8))
        #expect(TransactionModes.listedBranches(of: state).isEmpty, "the callback is bookkeeping")
        wf.retryInterval = 1
        #expect(try prepared(wf).nextDueUs == 2_000_000)
        wf.retryInterval = 0
        wf.timeoutToFail = 3
        #expect(try prepared(wf).nextDueUs == 4_000_000)
        let http = try prepared(request(input: nil, callback: "http://h/api/wf"))
        #expect(http.branch(id: "00", op: "transfer")?.payload.isEmpty == true, "HTTP: the raw input")
        #expect(throws: RequestError.self) {
            var bad = request()
            bad.customData = "{}"
            _ = try prepared(bad)
        }
    }

    @Test func theCallbackIsCalledWhenDueThenEveryServerRetryInterval() throws {
        var state = try prepared(request())
        #expect(WorkflowMode.decide(state, now: 5_000_000) == .wait(dueUs: 11_000_000))
        #expect(WorkflowMode.decide(state, now: 11_000_000) == .call([BranchRef("00", "transfer")]))
        state = try #require(apply(RecordedEvent(seq: 2, time: 11_500_000, gid: "wf", event: .attemptFinished(.with {
            $0.branchID = "00"; $0.op = "transfer"; $0.attempt = 1; $0.outcome = .error
        })), to: state))
        #expect(WorkflowMode.decidesAfterEveryCall(state))
        #expect(WorkflowMode.decide(state, now: 11_600_000) == .wait(dueUs: 21_500_000), "no backoff, whatever it answered")
        state.options.timeoutToFail = 1
        #expect(WorkflowMode.decide(state, now: 99_000_000_000) == .wait(dueUs: 21_500_000), "no timeout: never failed by the server")
    }

    @Test func progressIsRegisteredOnceAndSubmitRecordsTheEnd() throws {
        let state = try prepared(request())
        var registration = BranchRegistrationRequest()
        registration.gid = "wf"
        registration.transType = "workflow"
        registration.branchID = "01"
        registration.data = ["op": "action", "status": "succeed"]
        registration.payload = Data("reply".utf8)
        let branches = try WorkflowMode.registeredBranches(registration)
        let events = try ClientCommands.events(for: .registerBranches(branches, transType: "workflow"), gid: "wf", existing: state, now: 2)
        let progressed = try #require(apply(RecordedEvent(seq: 2, time: 2, gid: "wf", event: events[0]), to: state))
        #expect(progressed.branch(id: "01", op: "action")?.status == .succeed)
        #expect(throws: RequestError.refused("storage: UniqueKeyConflict")) {
            try ClientCommands.events(for: .registerBranches(branches, transType: "workflow"), gid: "wf", existing: progressed, now: 3)
        }
        registration.data["status"] = "weird"
        #expect(throws: RequestError.self) { try WorkflowMode.registeredBranches(registration) }

        let end = TransactionCreated.with {
            $0.transType = "workflow"
            $0.reqExtra = ["status": "failed", "rollback_reason": "no money", "result": ""]
        }
        let submitted = try ClientCommands.events(for: .submit(end), gid: "wf", existing: progressed, now: 4)
        guard case let .statusChanged(change) = submitted.first?.kind else {
            Issue.record("expected a status change")
            return
        }
        #expect(change.from == .prepared && change.to == .failed && change.reason == "no money" && change.byClient)
        #expect(ClientCommands.explains(change, before: progressed), "the audit explains a workflow's Submit")
        #expect(throws: RequestError.refused("storage: NotFound", internal: true)) {
            try ClientCommands.events(for: .submit(end), gid: "wf", existing: nil, now: 4)
        }
        #expect(try ClientCommands.events(for: .prepare(TransactionCreated.with { $0.transType = "workflow" }), gid: "wf", existing: progressed, now: 5).isEmpty,
                "PrepareWorkflow of a known gid changes nothing")
    }
}
