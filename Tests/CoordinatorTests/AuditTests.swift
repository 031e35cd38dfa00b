@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import EventLog
import Foundation
import LMDBStore
import Projections
import Testing

@Suite struct DecisionAuditTests {
    /// A saga whose second action fails, recorded as the coordinator records it.
    func recordedSaga(tamper: Bool = false) -> [RecordedEvent] {
        var created = TransactionCreated()
        created.transType = "saga"
        created.status = .submitted
        created.branches = sagaBranches.prefix(4).map { id, op in BranchSpec.with { $0.branchID = id; $0.op = op; $0.url = "h:1/p.S/\(op)" } }
        let events: [TransactionEvent] = [
            .created(created),
            .attemptStarted(.with { $0.branchID = "01"; $0.op = "action"; $0.attempt = 1 }),
            .attemptFinished(.with { $0.branchID = "01"; $0.op = "action"; $0.attempt = 1; $0.outcome = .success }),
            .attemptStarted(.with { $0.branchID = "02"; $0.op = "action"; $0.attempt = 1 }),
            .attemptFinished(.with { $0.branchID = "02"; $0.op = "action"; $0.attempt = 1; $0.outcome = .failure; $0.error = "no" }),
            .statusChanged(.with { $0.from = .submitted; $0.to = .aborting; $0.reason = "url:h:1/p.S/action return failed: no FAILURE" }),
            .attemptStarted(.with { $0.branchID = tamper ? "01" : "02"; $0.op = "compensate"; $0.attempt = 1 }),
            .attemptFinished(.with { $0.branchID = tamper ? "01" : "02"; $0.op = "compensate"; $0.attempt = 1; $0.outcome = .success }),
        ]
        return events.enumerated().map { RecordedEvent(seq: UInt64($0.offset + 1), time: 1_000, gid: "g", event: $0.element) }
    }

    @Test func decisionsTheRulesMadeReDerive() {
        #expect(DecisionAudit.check(recordedSaga()).isEmpty)
    }

    @Test func aDecisionTheRulesWouldNotMakeIsReported() {
        let mismatches = DecisionAudit.check(recordedSaga(tamper: true))
        #expect(mismatches.count == 1)
        #expect(mismatches.first?.seq == 7)
        #expect(mismatches.first?.derived == "call 02/compensate")
    }

    @Test func coordinatorRoundsPassTheAudit() async throws {
        let clock = ManualClock()
        try await withCoordinator(clock: clock) { coordinator, busi in
            busi.plans.withLock { $0["A2"] = [.unavailable, .aborted] }
            var request = TransactionRequest()
            request.gid = "audited"
            request.transType = "saga"
            let steps = [["action": try await busi.url("A1"), "compensate": try await busi.url("C1")],
                         ["action": try await busi.url("A2"), "compensate": try await busi.url("C2")]]
            request.steps = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
            request.payloads = [Data(), Data()]
            try await coordinator.submit(request)
            while try await coordinator.transaction("audited")?.status != .failed {
                clock.advance(by: .seconds(2))  // past the retry interval: no waiting in real time
                try await coordinator.drive("audited")
            }
            let events = try embeddedStore(coordinator).log.records(ofStream: "audited").map(RecordedEvent.init)
            #expect(events.count > 8)
            #expect(DecisionAudit.check(events).isEmpty)
        }
    }
}

/// The audit re-decides at the time a decision was made, and checks what clients changed.
@Suite struct DecisionTimeAuditTests {
    /// A prepared TCC transaction with a 5 s timeout whose abort was decided just before the
    /// timeout and recorded just after it.
    func timedOutTcc(decidedAt: Int64, recordedAt: Int64, reason: String) -> [RecordedEvent] {
        var created = TransactionCreated()
        created.transType = "tcc"
        created.status = .prepared
        created.options.timeoutToFail = 5
        let events: [(Int64, TransactionEvent)] = [
            (1_000_000, .created(created)),
            (recordedAt, .statusChanged(.with { $0.from = .prepared; $0.to = .aborting; $0.reason = reason; $0.decidedAtUs = decidedAt })),
        ]
        return events.enumerated().map { RecordedEvent(seq: UInt64($0.offset + 1), time: $0.element.0, gid: "t", event: $0.element.1) }
    }

    @Test func aDecisionIsReDerivedAtItsDecisionTimeNotItsCommitTime() {
        // Decided at the timeout, committed 1 ms later: the rules give the same step at 6.0 s.
        #expect(DecisionAudit.check(timedOutTcc(decidedAt: 6_000_000, recordedAt: 6_001_000, reason: "Timeout after 5 seconds")).isEmpty)
        // Recorded at 6.0 s but decided at 5.9 s, before the timeout: not what the rules say.
        let early = DecisionAudit.check(timedOutTcc(decidedAt: 5_900_000, recordedAt: 6_000_000, reason: "Timeout after 5 seconds"))
        #expect(early.count == 1)
    }

    @Test func logsWithoutDecisionTimesAreAuditedAtTheirRecordTimes() {
        #expect(DecisionAudit.check(timedOutTcc(decidedAt: 0, recordedAt: 6_000_000, reason: "Timeout after 5 seconds")).isEmpty)
        #expect(DecisionAudit.check(timedOutTcc(decidedAt: 0, recordedAt: 5_000_000, reason: "Timeout after 5 seconds")).count == 1)
    }

    @Test func clientStatusChangesMustBeOnesAClientCommandMakes() {
        var created = TransactionCreated()
        created.transType = "saga"
        created.status = .submitted
        func audit(_ change: StatusChanged) -> [DecisionAudit.Mismatch] {
            DecisionAudit.check([
                RecordedEvent(seq: 1, time: 1, gid: "s", event: .created(created)),
                RecordedEvent(seq: 2, time: 2, gid: "s", event: .statusChanged(change)),
            ])
        }
        #expect(audit(.with { $0.from = .submitted; $0.to = .failed; $0.reason = "force stopped"; $0.byClient = true }).isEmpty)
        // No client command succeeds a saga, nor aborts a submitted one.
        #expect(audit(.with { $0.from = .submitted; $0.to = .succeed; $0.byClient = true }).count == 1)
        #expect(audit(.with { $0.from = .submitted; $0.to = .aborting; $0.reason = "x"; $0.byClient = true }).count == 1)
    }
}
