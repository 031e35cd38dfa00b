import DTMClient
import DTMClientTesting
import DTMWire
import Foundation
import Testing

/// The SDK against SwiftDTM's coordinator in process (`DTMClientTesting`), with a branch service
/// that records each call and answers as planned.
func withSDKHarness(_ body: (TestDtm, ScriptedBranches) async throws -> Void) async throws {
    let busi = ScriptedBranches(
        service: "busi.Busi", methods: ["TransOut", "TransIn", "TransOutRevert", "TransInRevert", "Try", "Confirm", "Cancel"])
    try await withTestDtm(branches: [busi]) { dtm in try await body(dtm, busi) }
}

@Suite struct DTMClientTests {
    @Test func msgSubmitCallsEveryBranchWithDtmMetadata() async throws {
        try await withSDKHarness { dtm, busi in
            let gid = try await dtm.client.newGid()
            var msg = Msg(gid: gid)
            msg.options.waitResult = true
            try msg.add(busi.url("TransOut"), [UInt8]([1, 2]))
            try msg.add(busi.url("TransIn"), Data([3]))
            try await msg.submit(dtm.client)
            #expect(try await dtm.status(of: gid) == "succeed")
            let calls = busi.calls
            #expect(calls.map(\.method) == ["TransOut", "TransIn"])
            #expect(calls.map(\.payload) == [[1, 2], [3]])
            #expect(calls.first?.context?.gid == gid)
            #expect(calls.first?.context?.transType == "msg")
            #expect(calls.first?.context?.branchID == "01")
            #expect(calls.first?.context?.op == "action")
        }
    }

    @Test func sagaFailureComesBackAsDtmFailure() async throws {
        try await withSDKHarness { dtm, busi in
            busi.plan("TransIn", [.failure])
            var saga = Saga(gid: try await dtm.client.newGid())
            saga.options.waitResult = true
            try saga.add(action: busi.url("TransOut"), compensate: busi.url("TransOutRevert"), Data())
            try saga.add(action: busi.url("TransIn"), compensate: busi.url("TransInRevert"), Data())
            // dtm's text: the branch's FAILURE message (Go's `%w` of ErrFailure adds " FAILURE") in dtm's rollback reason.
            let reason = "url:\(busi.url("TransIn")) return failed: TransIn refused FAILURE FAILURE"
            await #expect(throws: DtmError.failure(reason)) { try await saga.submit(dtm.client) }
            #expect(busi.calls.map(\.method) == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"])
            #expect(try await dtm.status(of: saga.gid) == "failed")
        }
    }

    @Test func tccRegistersCallsTryThenConfirms() async throws {
        try await withSDKHarness { dtm, busi in
            let gid = try await dtm.client.newGid()
            try await tccGlobalTransaction(dtm.client, gid: gid) { tcc in
                try await tcc.callBranch(Data([9]), try: busi.url("Try"), confirm: busi.url("Confirm"), cancel: busi.url("Cancel"))
            }
            let tryCall = try #require(busi.calls.first)
            #expect(tryCall.method == "Try")
            #expect(tryCall.context?.op == "try")
            #expect(tryCall.context?.branchID == "01")
            try await dtm.waitForStatus(gid, "succeed")
            #expect(busi.calls.map(\.method) == ["Try", "Confirm"])
        }
    }

    @Test func aFailingTryCancelsTheRegisteredBranches() async throws {
        try await withSDKHarness { dtm, busi in
            busi.plan("Try", [.failure])
            let gid = try await dtm.client.newGid()
            await #expect(throws: DtmError.failure("Try refused FAILURE")) {
                try await tccGlobalTransaction(dtm.client, gid: gid) { tcc in
                    try await tcc.callBranch(Data(), try: busi.url("Try"), confirm: busi.url("Confirm"), cancel: busi.url("Cancel"))
                }
            }
            try await dtm.waitForStatus(gid, "failed")
            #expect(busi.calls.map(\.method) == ["Try", "Cancel"])
        }
    }

    /// Retries are tested by moving the test dtm's clock, not by waiting for them.
    @Test func aBranchErrorIsRetriedWhenTheClockReachesTheRetryTime() async throws {
        try await withSDKHarness { dtm, busi in
            busi.plan("TransIn", [.error, .error])
            var msg = Msg(gid: try await dtm.client.newGid())
            msg.options.retryInterval = 10
            try msg.add(busi.url("TransIn"), Data())
            try await msg.submit(dtm.client)
            // The first attempt runs at once and fails; nothing more happens until 10 s have passed.
            try await dtm.settle()
            #expect(busi.calls.count == 1)
            try await dtm.advance(by: .seconds(9))
            #expect(busi.calls.count == 1)
            try await dtm.advance(by: .seconds(1))
            #expect(busi.calls.count == 2, "retried at the interval")
            try await dtm.advance(by: .seconds(20))
            #expect(busi.calls.count == 3, "the interval doubled after an error")
            #expect(try await dtm.status(of: msg.gid) == "succeed")
            #expect(try await dtm.branchCalls(of: msg.gid).map(\.result) == ["ERROR", "ERROR", "SUCCESS"])
        }
    }

    /// The example in the README's "Unit tests of code that uses the SDK", as written there.
    @Test func transferRetriesUntilTransInSucceeds() async throws {
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["TransOut", "TransIn"])
        try await withTestDtm(branches: [busi]) { dtm in
            busi.plan("TransIn", [.error])
            var msg = Msg(gid: try await dtm.client.newGid())
            msg.options.retryInterval = 10
            try msg.add(busi.url("TransOut"), Data())
            try msg.add(busi.url("TransIn"), Data())
            try await msg.submit(dtm.client)
            try await dtm.settle()
            try await dtm.advance(by: .seconds(10))
            #expect(try await dtm.status(of: msg.gid) == "succeed")
            #expect(busi.calls.map(\.method) == ["TransOut", "TransIn", "TransIn"])
        }
    }
}
