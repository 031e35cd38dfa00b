import DTMBarrier
import DTMClient
import Foundation
import Testing

/// dtm's barrier rules on each database: every disorder case, and the barrier rows sharing the
/// business change's local transaction.
@Suite struct BranchBarrierTests {
    @Test func theTestCommandRunsThePostgreSQLCases() {
        // CI must not silently fall back to SQLite alone.
        if ProcessInfo.processInfo.environment["CI"] == "true" { #expect(Backend.postgresAddress != nil) }
    }

    @Test(arguments: Backend.available) func aRepeatedCallRunsTheBusinessCodeOnce(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            let action = try BranchBarrier(transType: "saga", gid: "g1", branchID: "01", op: "action")
            #expect(try await database.call(action, recording: "first"))
            // dtm retries the same call (a new request: a new BranchBarrier).
            let again = try BranchBarrier(transType: "saga", gid: "g1", branchID: "01", op: "action")
            #expect(try await database.call(again, recording: "again") == false)
            let compensate = try BranchBarrier(transType: "saga", gid: "g1", branchID: "01", op: "compensate")
            #expect(try await database.call(compensate, recording: "compensated"))
            let compensateAgain = try BranchBarrier(transType: "saga", gid: "g1", branchID: "01", op: "compensate")
            #expect(try await database.call(compensateAgain, recording: "compensated again") == false)
            #expect(try await database.businessRows() == ["first", "compensated"])
        }
    }

    @Test(arguments: Backend.available) func aNullCompensationDoesNothingAndTheHangingActionNeither(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            // The action timed out on dtm's side and never arrived: dtm compensates it.
            let compensate = try BranchBarrier(transType: "saga", gid: "g2", branchID: "01", op: "compensate")
            #expect(try await database.call(compensate, recording: "compensated") == false)
            // Then the action arrives after all (hanging): it must not run either.
            let action = try BranchBarrier(transType: "saga", gid: "g2", branchID: "01", op: "action")
            #expect(try await database.call(action, recording: "acted") == false)
            #expect(try await database.businessRows() == [])
            // What dtm's Go SDK leaves in the table: the action's row written by the compensation.
            #expect(try await database.storedReason(BarrierKey(gid: "g2", branchID: "01", op: "action", barrierID: "01")) == "compensate")
            #expect(try await database.storedReason(BarrierKey(gid: "g2", branchID: "01", op: "compensate", barrierID: "01")) == "compensate")
        }
    }

    @Test(arguments: Backend.available) func tccCancelBeforeTryAndWorkflowRollbackBeforeAction(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            let cancel = try BranchBarrier(transType: "tcc", gid: "g3", branchID: "01", op: "cancel")
            #expect(try await database.call(cancel, recording: "cancelled") == false)
            let tryCall = try BranchBarrier(transType: "tcc", gid: "g3", branchID: "01", op: "try")
            #expect(try await database.call(tryCall, recording: "tried") == false)
            // Confirm compensates nothing: it runs when it comes first.
            let confirm = try BranchBarrier(transType: "tcc", gid: "g3", branchID: "02", op: "confirm")
            #expect(try await database.call(confirm, recording: "confirmed"))
            let rollback = try BranchBarrier(transType: "workflow", gid: "g4", branchID: "01", op: "rollback")
            #expect(try await database.call(rollback, recording: "rolled back") == false)
            let action = try BranchBarrier(transType: "workflow", gid: "g4", branchID: "01", op: "action")
            #expect(try await database.call(action, recording: "acted") == false)
            #expect(try await database.businessRows() == ["confirmed"])
        }
    }

    @Test(arguments: Backend.available) func aFailingBodyRollsBackItsBarrierSoTheRetryRuns(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            let action = try BranchBarrier(transType: "saga", gid: "g5", branchID: "01", op: "action")
            await #expect(throws: BusinessError.self) { try await database.call(action, recording: "lost", thenThrowing: BusinessError()) }
            #expect(try await database.storedReason(BarrierKey(gid: "g5", branchID: "01", op: "action", barrierID: "01")) == nil)
            #expect(try await database.businessRows() == [])
            let retry = try BranchBarrier(transType: "saga", gid: "g5", branchID: "01", op: "action")
            #expect(try await database.call(retry, recording: "kept"))
            #expect(try await database.businessRows() == ["kept"])
        }
    }

    @Test(arguments: Backend.available) func concurrentDuplicatesRunTheBodyOnce(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            let ran = try await withThrowingTaskGroup(of: Bool.self) { group in
                for copy in 0..<4 {
                    group.addTask {
                        let action = try BranchBarrier(transType: "saga", gid: "g6", branchID: "01", op: "action")
                        return try await database.call(action, recording: "copy \(copy)", holding: .milliseconds(50))
                    }
                }
                return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
            }
            #expect(ran == 1)
            #expect(try await database.businessRows().count == 1)
        }
    }

    @Test(arguments: Backend.available) func gidsAreComparedAsBytes(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            // "é" precomposed and decomposed: equal as Swift Strings, two different gids to dtm.
            let composed = try BranchBarrier(transType: "saga", gid: "caf\u{E9}", branchID: "01", op: "action")
            let decomposed = try BranchBarrier(transType: "saga", gid: "cafe\u{301}", branchID: "01", op: "action")
            #expect(try await database.call(composed, recording: "composed"))
            #expect(try await database.call(decomposed, recording: "decomposed"))
            #expect(try await database.businessRows() == ["composed", "decomposed"])
        }
    }

    @Test(arguments: Backend.available) func queryPreparedRefusesALateLocalTransaction(_ backend: Backend) async throws {
        try await backend.withDatabase { database in
            // The msg's local transaction has not committed when dtm asks: rolled back, for good.
            await #expect(throws: DtmError.failure("msg m1: its local transaction was rolled back")) {
                try await database.queryPrepared(gid: "m1")
            }
            let late = try BranchBarrier(transType: "msg", gid: "m1", branchID: "00", op: "msg")
            await #expect(throws: BarrierError.duplicated("m1")) { try await database.call(late, recording: "late") }
            #expect(try await database.businessRows() == [])
            // Committed first: dtm is answered success, and a second run is refused.
            let local = try BranchBarrier(transType: "msg", gid: "m2", branchID: "00", op: "msg")
            #expect(try await database.call(local, recording: "m2 done"))
            try await database.queryPrepared(gid: "m2")
            let again = try BranchBarrier(transType: "msg", gid: "m2", branchID: "00", op: "msg")
            await #expect(throws: BarrierError.duplicated("m2")) { try await database.call(again, recording: "m2 twice") }
            #expect(try await database.businessRows() == ["m2 done"])
        }
    }

    @Test func aBarrierNeedsDtmsFields() throws {
        #expect(throws: BarrierError.invalidContext("the call carries no dtm metadata (dtm-gid)")) { try BranchBarrier(nil) }
        #expect(throws: BarrierError.invalidContext("op is empty")) {
            try BranchBarrier(BranchContext(gid: "g", transType: "saga", branchID: "01", op: ""))
        }
        #expect(throws: BarrierError.invalidTableName("barrier; DROP TABLE x")) { try validatedBarrierTable("barrier; DROP TABLE x") }
        #expect(throws: BarrierError.invalidTableName("1barrier")) { try validatedBarrierTable("1barrier") }
        #expect(try validatedBarrierTable("dtm_barrier.barrier") == "dtm_barrier.barrier")
    }
}
