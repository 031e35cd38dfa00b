@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import EventLog
import Foundation
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
            .statusChanged(.with { $0.from = .submitted; $0.to = .aborting; $0.reason = "no" }),
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
        try await withCoordinator { coordinator, busi in
            busi.plans.withLock { $0["A2"] = [.unavailable, .aborted] }
            var request = TransactionRequest()
            request.gid = "audited"
            request.transType = "saga"
            let steps = [["action": try await busi.url("A1"), "compensate": try await busi.url("C1")],
                         ["action": try await busi.url("A2"), "compensate": try await busi.url("C2")]]
            request.steps = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
            request.payloads = [Data(), Data()]
            try await coordinator.submit(request)
            while try coordinator.transaction("audited")?.status != .failed {
                try await Task.sleep(for: .milliseconds(50))
                try await coordinator.drive("audited")
            }
            let events = try coordinator.log.records(ofStream: "audited").map(RecordedEvent.init)
            #expect(events.count > 8)
            #expect(DecisionAudit.check(events).isEmpty)
        }
    }
}
