import DTMClient
import DTMClientTesting
import DTMWire
import Foundation
import GRPCCore
import Synchronization
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

    @Test func aMsgTopicReachesEverySubscriber() async throws {
        try await withSDKHarness { dtm, busi in
            try await dtm.client.subscribe(topic: "transfers", url: busi.url("TransIn"), remark: "ledger")
            try await dtm.client.subscribe(topic: "transfers", url: busi.url("TransOut"))
            var msg = Msg(gid: try await dtm.client.newGid())
            msg.options.waitResult = true
            try msg.addTopic("transfers", [UInt8]([4]))
            try await msg.submit(dtm.client)
            #expect(busi.calls.map(\.method) == ["TransIn", "TransOut"])
            #expect(busi.calls.map(\.payload) == [[4], [4]])
            #expect(busi.calls.map { $0.context?.branchID } == ["01-01", "01-02"])
            try await dtm.client.unsubscribe(topic: "transfers", url: busi.url("TransOut"))
            try await dtm.client.deleteTopic("transfers")
            var orphan = Msg(gid: try await dtm.client.newGid())
            try orphan.addTopic("transfers", [UInt8]())
            await #expect(throws: RPCError.self) { try await orphan.submit(dtm.client) }  // dtm: topic not found
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
            #expect(tryCall.context?.dtm == TestDtm.target)
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

    @Test func aTryStartsSubBranchesOfItsOwnAndItsReplyComesBack() async throws {
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["Try", "Confirm", "Cancel"])
        let outer = NestingTry(busi: busi)
        try await withTestDtm(branches: [busi, outer]) { dtm in
            outer.client.withLock { $0 = dtm.client }
            let gid = try await dtm.client.newGid()
            var reply: [UInt8] = []
            try await tccGlobalTransaction(dtm.client, gid: gid) { tcc in
                reply = try await tcc.callBranch(Data([1]), try: NestingTry.url, confirm: busi.url("Confirm"), cancel: busi.url("Cancel"))
            }
            #expect(reply == NestingTry.reply)
            try await dtm.waitForStatus(gid, "succeed")
            let tries = busi.calls.filter { $0.method == "Try" }
            #expect(tries.map(\.context?.branchID) == ["0101"])
            #expect(Set(busi.calls.filter { $0.method == "Confirm" }.compactMap(\.context?.branchID)) == ["01", "0101"])
        }
    }

    @Test func aNestedTccNeedsATccBranchsContext() async throws {
        try await withSDKHarness { dtm, _ in
            #expect(throws: DtmError.self) {
                try Tcc(nestedIn: BranchContext(gid: "g", transType: "saga", branchID: "01", op: "action"), client: dtm.client)
            }
        }
    }

    @Test func theCallersErrorSurvivesAFailingAbort() async throws {
        struct Refused: Error {}
        try await withSDKHarness { dtm, busi in
            let gid = try await dtm.client.newGid()
            await #expect(throws: Refused.self) {
                try await tccGlobalTransaction(dtm.client, gid: gid) { tcc in
                    try await tcc.callBranch(Data(), try: busi.url("Try"), confirm: busi.url("Confirm"), cancel: busi.url("Cancel"))
                    // Submitted meanwhile (the same gid, idempotent Prepare): the Abort that follows is refused.
                    try await tccGlobalTransaction(dtm.client, gid: gid) { _ in }
                    throw Refused()
                }
            }
            try await dtm.waitForStatus(gid, "succeed")
        }
    }
}

/// A TCC Try (`nest.Nest/Outer`) that registers and calls a sub-branch of its own through the
/// test's dtm client, and answers `reply`.
final class NestingTry: RegistrableRPCService, Sendable {
    static let url = "nest:1/nest.Nest/Outer"
    static let reply = Array("outer done".utf8)
    let busi: ScriptedBranches
    let client = Mutex<DtmClient?>(nil)

    init(busi: ScriptedBranches) { self.busi = busi }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "nest.Nest", method: "Outer"),
            deserializer: RawBytesCoding(), serializer: RawBytesCoding()
        ) { request, _ in
            for try await _ in request.messages {}
            return try await dtmBranch(request.metadata) { context in
                guard let context, let client = self.client.withLock({ $0 }) else { throw DtmError.failure("no dtm context") }
                #expect(context.dtm == TestDtm.target)
                let nested = try Tcc(nestedIn: context, client: client)
                try await nested.callBranch(Data([2]), try: self.busi.url("Try"), confirm: self.busi.url("Confirm"), cancel: self.busi.url("Cancel"))
                return StreamingServerResponse(single: ServerResponse(message: NestingTry.reply))
            }
        }
    }
}
