import Foundation
import Projections
import TransactionFixtures
import Testing

@Suite struct ApplyTests {
    @Test func createdStartsTheState() throws {
        let state = try #require(apply(recorded(1, sagaCreated()), to: nil))
        #expect(state.gid == "g1")
        #expect(state.transType == "saga")
        #expect(state.status == .submitted)
        #expect(state.createTimeUs == 1000)
        #expect(state.nextDueUs == 5_000)
        #expect(state.branches.map(\.op) == ["compensate", "action"])
        #expect(state.branches.allSatisfy { $0.status == .prepared && $0.attempts == 0 })
        #expect(state.lastSeq == 1)
    }

    @Test func eventsBeforeCreatedAndSecondCreatedChangeNothing() throws {
        #expect(apply(recorded(1, .statusChanged(.with { $0.to = .succeed })), to: nil) == nil)
        let state = try #require(apply(recorded(1, sagaCreated()), to: nil))
        #expect(apply(recorded(2, sagaCreated(status: .prepared)), to: state) == state)
        #expect(apply(recorded(2, .statusChanged(.with { $0.to = .failed }), gid: "other"), to: state) == state)
    }

    @Test func attemptsAndOutcomesUpdateTheBranch() throws {
        var state = try #require(apply(recorded(1, sagaCreated()), to: nil))
        state = try #require(apply(recorded(2, .attemptStarted(.with { $0.branchID = "01"; $0.op = "action"; $0.attempt = 1 })), to: state))
        #expect(state.branch(id: "01", op: "action")?.attempts == 1)
        state = try #require(apply(recorded(3, .attemptFinished(.with {
            $0.branchID = "01"; $0.op = "action"; $0.attempt = 1; $0.outcome = .error; $0.error = "unavailable"
        })), to: state))
        let errored = try #require(state.branch(id: "01", op: "action"))
        #expect(errored.status == .prepared)
        #expect(errored.lastOutcome == .error)
        #expect(errored.lastError == "unavailable")
        state = try #require(apply(recorded(4, .attemptFinished(.with {
            $0.branchID = "01"; $0.op = "action"; $0.attempt = 2; $0.outcome = .failure
        })), to: state))
        #expect(state.branch(id: "01", op: "action")?.status == .failed)
        #expect(state.branch(id: "01", op: "action")?.attempts == 2)
        #expect(state.branch(id: "01", op: "action")?.finishTimeUs == 4000)
        state = try #require(apply(recorded(5, .attemptFinished(.with {
            $0.branchID = "01"; $0.op = "compensate"; $0.attempt = 1; $0.outcome = .success
        })), to: state))
        #expect(state.branch(id: "01", op: "compensate")?.status == .succeed)
        #expect(state.lastSeq == 5)
        #expect(state.updateTimeUs == 5000)
    }

    @Test func terminalStatusKeepsTheDueTimeAndTheReason() throws {
        var state = try #require(apply(recorded(1, sagaCreated()), to: nil))
        state = try #require(apply(recorded(2, .statusChanged(.with { $0.from = .submitted; $0.to = .aborting; $0.reason = "insufficient balance" })), to: state))
        #expect(state.status == .aborting)
        #expect(state.rollbackReason == "insufficient balance")
        state = try #require(apply(recorded(3, .retryScheduled(.with { $0.dueUs = 90_000; $0.retryInterval = 20 })), to: state))
        #expect(state.nextDueUs == 90_000)
        #expect(state.retryInterval == 20)
        state = try #require(apply(recorded(4, .statusChanged(.with { $0.from = .aborting; $0.to = .failed })), to: state))
        #expect(state.status == .failed)
        #expect(state.rollbackReason == "insufficient balance")
        #expect(state.nextDueUs == 90_000, "dtm keeps next_cron_time after the end")
        #expect(state.finishTimeUs == 4000)
        state = try #require(apply(recorded(5, .retryScheduled(.with { $0.dueUs = 99_000 })), to: state))
        #expect(state.nextDueUs == 99_000, "resetNextCronTime shows on a finished transaction")
    }

    @Test func registeredBranchesAreAddedOrUpdated() throws {
        var state = try #require(apply(recorded(1, .created(.with { $0.transType = "tcc"; $0.status = .prepared })), to: nil))
        for op in ["cancel", "confirm"] {
            state = try #require(apply(recorded(2, .branchRegistered(.with {
                $0.branch = .with { $0.branchID = "01"; $0.op = op; $0.url = "h:1/s.S/\(op)"; $0.payload = Data("p".utf8) }
                $0.status = .prepared
            })), to: state))
        }
        #expect(state.branches.map(\.op) == ["cancel", "confirm"])
        state = try #require(apply(recorded(3, .branchRegistered(.with {
            $0.branch = .with { $0.branchID = "01"; $0.op = "confirm"; $0.url = "h:1/s.S/Confirm2" }
            $0.status = .succeed
        })), to: state))
        #expect(state.branches.count == 2)
        #expect(state.branch(id: "01", op: "confirm")?.url == "h:1/s.S/Confirm2")
        #expect(state.branch(id: "01", op: "confirm")?.status == .succeed)
        state = try #require(apply(recorded(4, .workflowResult(.with { $0.result = Data("done".utf8) })), to: state))
        #expect(state.result == Data("done".utf8))
    }

    @Test func statusNamesMatchDtm() {
        #expect(TransactionStatus.allCases.map(\.dtmName) == ["", "prepared", "submitted", "aborting", "succeed", "failed"])
        #expect(TransactionStatus(dtmName: "aborting") == .aborting)
        #expect(TransactionStatus(dtmName: "") == nil)
        #expect(TransactionStatus(dtmName: "done") == nil)
    }
}
