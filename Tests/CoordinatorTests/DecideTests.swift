@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import Foundation
import Projections
import Testing

/// A state built from a created event and a list of (branch, op, outcome) attempts.
func state(
    _ transType: String, _ status: TransactionStatus, branches: [(String, String)],
    attempts: [(String, String, AttemptOutcome)] = [], options: (inout TransactionOptions) -> Void = { _ in },
    createdAt: Int64 = 1_000_000
) -> TransactionState {
    var created = TransactionCreated()
    created.transType = transType
    created.status = status
    created.branches = branches.map { id, op in BranchSpec.with { $0.branchID = id; $0.op = op; $0.url = "h:1/p.S/\(op)" } }
    options(&created.options)
    var current = apply(RecordedEvent(seq: 1, time: createdAt, gid: "g", event: .created(created)), to: nil)
    var seq: UInt64 = 2
    for (id, op, outcome) in attempts {
        let attempt = (current?.branch(id: id, op: op)?.attempts ?? 0) + 1
        current = apply(RecordedEvent(seq: seq, time: createdAt, gid: "g", event: .attemptFinished(.with {
            $0.branchID = id; $0.op = op; $0.attempt = attempt; $0.outcome = outcome; $0.error = outcome == .failure ? "no money" : ""
        })), to: current)
        seq += 1
    }
    return current!
}

let sagaBranches = [("01", "compensate"), ("01", "action"), ("02", "compensate"), ("02", "action"), ("03", "compensate"), ("03", "action")]

@Suite struct SagaDecideTests {
    @Test func actionsRunOneAfterAnother() {
        #expect(SagaMode.decide(state("saga", .submitted, branches: sagaBranches), now: 2_000_000) == .call([BranchRef("01", "action")]))
        let afterFirst = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .success)])
        #expect(SagaMode.decide(afterFirst, now: 2_000_000) == .call([BranchRef("02", "action")]))
        let ongoing = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .ongoing)])
        #expect(SagaMode.decide(ongoing, now: 2_000_000) == .call([BranchRef("01", "action")]))
        let all = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .success), ("02", "action", .success), ("03", "action", .success)])
        #expect(SagaMode.decide(all, now: 2_000_000) == .changeStatus(.succeed, reason: ""))
    }

    @Test func aFailedActionAbortsWithItsErrorAndCompensatesAttemptedStepsInReverse() {
        let failed = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .success), ("02", "action", .failure)])
        #expect(SagaMode.decide(failed, now: 2_000_000) == .changeStatus(.aborting, reason: "url:h:1/p.S/action return failed: no money FAILURE"))
        var aborting = failed
        aborting.status = .aborting
        #expect(SagaMode.decide(aborting, now: 2_000_000) == .call([BranchRef("02", "compensate")]))
        let compensated = apply(RecordedEvent(seq: 9, time: 2, gid: "g", event: .attemptFinished(.with {
            $0.branchID = "02"; $0.op = "compensate"; $0.attempt = 1; $0.outcome = .success
        })), to: aborting)!
        #expect(SagaMode.decide(compensated, now: 2_000_000) == .call([BranchRef("01", "compensate")]), "step 3 was never attempted")
        let done = apply(RecordedEvent(seq: 10, time: 2, gid: "g", event: .attemptFinished(.with {
            $0.branchID = "01"; $0.op = "compensate"; $0.attempt = 1; $0.outcome = .success
        })), to: compensated)!
        #expect(SagaMode.decide(done, now: 2_000_000) == .changeStatus(.failed, reason: ""))
    }

    @Test func aCompensationThatFailsIsCalledAgain() {
        var aborting = state("saga", .aborting, branches: sagaBranches, attempts: [("01", "action", .failure), ("01", "compensate", .failure)])
        aborting.status = .aborting
        #expect(SagaMode.decide(aborting, now: 2_000_000) == .call([BranchRef("01", "compensate")]))
        #expect(!SagaMode.failureIsFinal(op: "compensate"))
        #expect(SagaMode.failureIsFinal(op: "action"))
    }

    @Test func concurrentStepsFollowTheirOrders() {
        let options: (inout TransactionOptions) -> Void = {
            $0.concurrent = true
            $0.stepOrders = [StepOrder.with { $0.step = 2; $0.after = [0, 1] }]
        }
        let start = state("saga", .submitted, branches: sagaBranches, options: options)
        #expect(SagaMode.decide(start, now: 2_000_000) == .call([BranchRef("01", "action"), BranchRef("02", "action")]))
        let oneDone = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .success)], options: options)
        #expect(SagaMode.decide(oneDone, now: 2_000_000) == .call([BranchRef("02", "action")]))
        let both = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .success), ("02", "action", .success)], options: options)
        #expect(SagaMode.decide(both, now: 2_000_000) == .call([BranchRef("03", "action")]))
    }

    @Test func retryLimitRetriesAtOnceThenAborts() {
        // dtm's RetryCount: RetryLimit 2 allows two retries (three attempts) of all actions together.
        let twice = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .error), ("01", "action", .ongoing)], options: { $0.retryLimit = 2 })
        #expect(SagaMode.decidesAfterEveryCall(twice))
        #expect(SagaMode.decide(twice, now: 2_000_000) == .call([BranchRef("01", "action")]))
        let thrice = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .error), ("01", "action", .success), ("02", "action", .error), ("02", "action", .error)], options: { $0.retryLimit = 2 })
        #expect(SagaMode.decide(thrice, now: 2_000_000) == .changeStatus(.aborting, reason: "RetryCount is greater than RetryLimit, RetryLimit: 2"))
        let unlimited = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .error)])
        #expect(!SagaMode.decidesAfterEveryCall(unlimited), "without a RetryLimit, errors wait for the retry schedule")
    }

    @Test func failedActionAndTimeoutAbortWithDtmsReasons() {
        let failed = state("saga", .submitted, branches: sagaBranches, attempts: [("01", "action", .failure)])
        guard case let .changeStatus(status, reason) = SagaMode.decide(failed, now: 2_000_000) else {
            Issue.record("expected an abort")
            return
        }
        #expect(status == .aborting)
        #expect(reason == "url:h:1/p.S/action return failed: no money FAILURE")
        let timed = state("saga", .submitted, branches: sagaBranches, options: { $0.timeoutToFail = 5 })
        #expect(SagaMode.decide(timed, now: 5_999_999) == .call([BranchRef("01", "action")]))
        #expect(SagaMode.decide(timed, now: 6_000_000) == .changeStatus(.aborting, reason: "Timeout after 5 seconds"))
    }
}

@Suite struct MsgDecideTests {
    let branches = [("01", "action"), ("02", "action"), ("00", "msg")]

    @Test func preparedWaitsForItsTimeoutThenQueriesPrepared() {
        let prepared = state("msg", .prepared, branches: branches, options: { $0.timeoutToFail = 10 })
        #expect(MsgMode.decide(prepared, now: 2_000_000) == .wait(dueUs: 11_000_000))
        #expect(MsgMode.decide(prepared, now: 11_000_000) == .call([MsgMode.queryPrepared]))
        let yes = state("msg", .prepared, branches: branches, attempts: [("00", "msg", .success)], options: { $0.timeoutToFail = 10 })
        #expect(MsgMode.decide(yes, now: 12_000_000) == .changeStatus(.submitted, reason: ""))
        let no = state("msg", .prepared, branches: branches, attempts: [("00", "msg", .failure)], options: { $0.timeoutToFail = 10 })
        #expect(MsgMode.decide(no, now: 12_000_000) == .changeStatus(.failed, reason: "no money"))
        let unsure = state("msg", .prepared, branches: branches, attempts: [("00", "msg", .ongoing)], options: { $0.timeoutToFail = 10 })
        #expect(MsgMode.decide(unsure, now: 12_000_000) == .call([MsgMode.queryPrepared]))
    }

    @Test func submittedRunsActionsUntilAllSucceedAndNeverRollsBack() {
        #expect(MsgMode.decide(state("msg", .submitted, branches: branches), now: 1) == .call([BranchRef("01", "action")]))
        let failing = state("msg", .submitted, branches: branches, attempts: [("01", "action", .failure)])
        #expect(MsgMode.decide(failing, now: 1) == .call([BranchRef("01", "action")]))
        #expect(!MsgMode.failureIsFinal(op: "action"))
        let done = state("msg", .submitted, branches: branches, attempts: [("01", "action", .success), ("02", "action", .success)])
        #expect(MsgMode.decide(done, now: 1) == .changeStatus(.succeed, reason: ""))
    }
}

@Suite struct TwoPhaseDecideTests {
    let tcc = [("01", "cancel"), ("01", "confirm"), ("02", "cancel"), ("02", "confirm")]
    let xa = [("01", "rollback"), ("01", "commit"), ("02", "rollback"), ("02", "commit")]

    @Test func tccConfirmsAndCancelsInReverse() {
        #expect(TccMode.decide(state("tcc", .submitted, branches: tcc), now: 1) == .call([BranchRef("02", "confirm")]))
        #expect(TccMode.decide(state("tcc", .aborting, branches: tcc), now: 1) == .call([BranchRef("02", "cancel")]))
        let confirmed = state("tcc", .submitted, branches: tcc, attempts: [("02", "confirm", .success), ("01", "confirm", .success)])
        #expect(TccMode.decide(confirmed, now: 1) == .changeStatus(.succeed, reason: ""))
        let cancelled = state("tcc", .aborting, branches: tcc, attempts: [("02", "cancel", .success), ("01", "cancel", .success)])
        #expect(TccMode.decide(cancelled, now: 1) == .changeStatus(.failed, reason: ""))
    }

    @Test func xaCommitsAndRollsBackInOrder() {
        #expect(XaMode.decide(state("xa", .submitted, branches: xa), now: 1) == .call([BranchRef("01", "commit")]))
        #expect(XaMode.decide(state("xa", .aborting, branches: xa), now: 1) == .call([BranchRef("01", "rollback")]))
    }

    @Test func preparedWaitsUntilTheTimeoutAborts() {
        let prepared = state("tcc", .prepared, branches: tcc, options: { $0.timeoutToFail = 3 })
        #expect(TccMode.decide(prepared, now: 2_000_000) == .wait(dueUs: 4_000_000))
        #expect(TccMode.decide(prepared, now: 4_000_000) == .changeStatus(.aborting, reason: "Timeout after 3 seconds"))
        #expect(XaMode.decide(state("xa", .succeed, branches: xa), now: 1) == .done)
    }
}

@Suite struct RetryPolicyTests {
    @Test func dtmsRetryCountAndWhatAlerts() {
        #expect([1, 2, 3, 4, 8, 9, 1024].map { RetryPolicy.retryCount(interval: $0, base: 1) } == [0, 1, 1, 2, 3, 3, 10])
        #expect(RetryPolicy.retryCount(interval: 40, base: 10) == 2)
        #expect(RetryPolicy.retryCount(interval: 5, base: 0) == 0)
        let outcomes: [(branch: BranchRef, outcome: AttemptOutcome)] = [
            (BranchRef("01", "action"), .failure), (BranchRef("02", "action"), .error),
            (BranchRef("03", "compensate"), .failure), (BranchRef("04", "action"), .ongoing)]
        #expect(RetryPolicy.alerting(outcomes, mode: SagaMode.self) == [BranchRef("02", "action"), BranchRef("03", "compensate")])
    }

    let base = state("saga", .submitted, branches: sagaBranches, options: { $0.retryInterval = 2 })

    @Test func errorsDoubleOngoingKeepsSuccessResets() throws {
        let action = BranchRef("01", "action")
        let first = try #require(RetryPolicy.afterRound([(action, .error)], state: base, failureIsFinal: SagaMode.failureIsFinal, now: 0))
        #expect(first.dueUs == 2_000_000)
        #expect(first.retryInterval == 4)
        var backedOff = base
        backedOff.retryInterval = 4
        let second = try #require(RetryPolicy.afterRound([(action, .error)], state: backedOff, failureIsFinal: SagaMode.failureIsFinal, now: 0))
        #expect(second.dueUs == 4_000_000)
        #expect(second.retryInterval == 8)
        let ongoing = try #require(RetryPolicy.afterRound([(action, .ongoing)], state: backedOff, failureIsFinal: SagaMode.failureIsFinal, now: 0))
        #expect(ongoing.dueUs == 4_000_000)
        #expect(ongoing.retryInterval == 4)
        let mixed = try #require(RetryPolicy.afterRound([(action, .success), (BranchRef("02", "action"), .ongoing)], state: backedOff, failureIsFinal: SagaMode.failureIsFinal, now: 0))
        #expect(mixed.dueUs == 2_000_000)
        #expect(RetryPolicy.afterRound([(action, .success)], state: base, failureIsFinal: SagaMode.failureIsFinal, now: 0) == nil)
        #expect(RetryPolicy.afterRound([(action, .failure)], state: base, failureIsFinal: SagaMode.failureIsFinal, now: 0) == nil)
        #expect(RetryPolicy.afterRound([(BranchRef("01", "compensate"), .failure)], state: base, failureIsFinal: SagaMode.failureIsFinal, now: 0) != nil)
    }

    @Test func theIntervalStopsGrowingAtAnHour() throws {
        var long = base
        long.retryInterval = 3000
        let next = try #require(RetryPolicy.afterRound([(BranchRef("01", "action"), .error)], state: long, failureIsFinal: SagaMode.failureIsFinal, now: 0))
        #expect(next.retryInterval == RetryPolicy.maximumInterval)
    }
}
