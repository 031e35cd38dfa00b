@testable import Modes
import DTMWire
import Projections
import Testing

/// The client commands' rules, without any I/O.
@Suite struct ClientCommandsTests {
    func state(_ transType: String, _ status: TransactionStatus) -> TransactionState {
        .with { $0.gid = "g"; $0.transType = transType; $0.status = status; $0.retryInterval = 7; $0.version = 3 }
    }

    func statusChange(_ events: [TransactionEvent]) -> StatusChanged? {
        for event in events { if case let .statusChanged(change) = event.kind { return change } }
        return nil
    }

    @Test func submitCreatesOrSubmitsOnceAndStampsTheDecisionTime() throws {
        let created = TransactionCreated.with { $0.transType = "msg"; $0.status = .submitted; $0.nextDueUs = 9 }
        let new = try ClientCommands.events(for: .submit(created), gid: "g", existing: nil, now: 5)
        #expect(new == [.created(created)])
        let submitted = try ClientCommands.events(for: .submit(created), gid: "g", existing: state("msg", .prepared), now: 5)
        #expect(statusChange(submitted)?.to == .submitted)
        #expect(statusChange(submitted)?.decidedAtUs == 5)
        #expect(statusChange(submitted)?.byClient == true)
        var waiting = state("msg", .submitted)
        #expect(try ClientCommands.events(for: .submit(created), gid: "g", existing: waiting, now: 5).isEmpty, "due already: the coordinator runs the round")
        waiting.nextDueUs = 60
        #expect(try ClientCommands.events(for: .submit(created), gid: "g", existing: waiting, now: 5) == [
            .retryScheduled(.with { $0.dueUs = 5; $0.retryInterval = waiting.retryInterval })], "a submit again makes it due now, as in dtm")
        #expect(throws: RequestError.failure("current status 'succeed', cannot sumbmit.")) {
            try ClientCommands.events(for: .submit(created), gid: "g", existing: state("msg", .succeed), now: 5)
        }
    }

    @Test func abortIsTheModesRule() throws {
        #expect(statusChange(try ClientCommands.events(for: .abort(reason: "r"), gid: "g", existing: state("msg", .prepared), now: 1))?.to == .failed)
        #expect(statusChange(try ClientCommands.events(for: .abort(reason: "r"), gid: "g", existing: state("tcc", .prepared), now: 1))?.to == .aborting)
        #expect(try ClientCommands.events(for: .abort(reason: "r"), gid: "g", existing: state("xa", .aborting), now: 1).isEmpty)
        #expect(throws: RequestError.failure("trans type: 'saga' current status 'submitted', cannot abort.")) {
            try ClientCommands.events(for: .abort(reason: "r"), gid: "g", existing: state("saga", .submitted), now: 1)
        }
        #expect(throws: RequestError.refused("no TransGlobal with gid: g found")) {
            try ClientCommands.events(for: .abort(reason: "r"), gid: "g", existing: nil, now: 1)
        }
    }

    @Test func registrationAddsOnlyNewBranchesOfTheRightMode() throws {
        var request = BranchRegistrationRequest()
        request.gid = "g"
        request.transType = "tcc"
        request.branchID = "01"
        request.data = ["confirm": "h:1/p.S/Confirm", "cancel": "h:1/p.S/Cancel"]
        let specs = try TccMode.registeredBranches(request)
        #expect(specs.map(\.branch.op) == ["cancel", "confirm"])
        var existing = state("tcc", .prepared)
        #expect(try ClientCommands.events(for: .registerBranches(specs, transType: "tcc"), gid: "g", existing: existing, now: 1).count == 2)
        existing.branches = [BranchState.with { $0.branchID = "01"; $0.op = "cancel" }]
        #expect(try ClientCommands.events(for: .registerBranches(specs, transType: "tcc"), gid: "g", existing: existing, now: 1).count == 1)
        #expect(throws: RequestError.self) {
            try ClientCommands.events(for: .registerBranches(specs, transType: "tcc"), gid: "g", existing: state("xa", .prepared), now: 1)
        }
        #expect(throws: RequestError.self) { try SagaMode.registeredBranches(request) }
        request.data = ["url": "h:1/p.S/Xa"]
        #expect(try XaMode.registeredBranches(request).map(\.branch.url) == ["h:1/p.S/Xa", "h:1/p.S/Xa"])
    }

    @Test func forceStopAndResetNextCronTime() throws {
        let stopped = try ClientCommands.events(for: .forceStop, gid: "g", existing: state("saga", .aborting), now: 1)
        #expect(statusChange(stopped)?.from == .aborting)
        #expect(statusChange(stopped)?.reason == "force stopped")
        #expect(throws: RequestError.self) { try ClientCommands.events(for: .forceStop, gid: "g", existing: state("saga", .failed), now: 1) }
        let reset = try ClientCommands.events(for: .resetNextCronTime, gid: "g", existing: state("saga", .submitted), now: 42)
        #expect(reset == [.retryScheduled(.with { $0.dueUs = 42; $0.retryInterval = 7 })])
        #expect(try ClientCommands.events(for: .resetNextCronTime, gid: "g", existing: state("saga", .succeed), now: 42) == reset, "any status, as in dtm")
        #expect(throws: RequestError.refused("no TransGlobal with gid: g found")) { try ClientCommands.events(for: .resetNextCronTime, gid: "g", existing: nil, now: 42) }
    }

    @Test func modesAreFoundByTransType() throws {
        #expect(try TransactionModes.requested("saga") == SagaMode.self)
        #expect(throws: RequestError.self) { try TransactionModes.requested("nope") }
        #expect(try TransactionModes.requested("workflow") == WorkflowMode.self)
        #expect(XaMode.postsEmptyPayload && !TccMode.postsEmptyPayload)
    }
}
