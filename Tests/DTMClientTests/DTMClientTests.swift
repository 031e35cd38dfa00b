@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import DTMClient
import EventLog
import Foundation
import LMDBStore
import GRPCCore
import GRPCNIOTransportHTTP2
import GrpcGateway
import Projections
import Synchronization
import Testing

/// dtm's gRPC service in process (coordinator + gateway) and a branch service made with the SDK's
/// branch helper; the SDK talks to both over real HTTP/2 connections.

final class CallLog: Sendable {
    let calls = Mutex<[(method: String, context: BranchContext?, payload: [UInt8])]>([])
    let failing = Mutex<Set<String>>([])
}

func withSDKHarness(_ body: (Coordinator, String, String, CallLog) async throws -> Void) async throws {
    let path = NSTemporaryDirectory() + "swiftdtm-sdk-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: path) }
    var configuration = LMDBStoreConfiguration(path: path)
    configuration.durability = .noSync
    let store = try await LMDBTransactionStore.open(configuration)
    let invoker = GrpcBranchInvoker()
    let coordinator = Coordinator(store: store, invoker: invoker, defaults: TransactionDefaults())
    let dtmServer = GRPCServer(
        transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
        services: [DtmService(coordinator: coordinator)])
    let callLog = CallLog()
    var router = RPCRouter<HTTP2ServerTransport.Posix>()
    for method in ["TransOut", "TransIn", "TransOutRevert", "TransInRevert", "Try", "Confirm", "Cancel"] {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "busi.Busi", method: method),
            deserializer: RawBytesCoding(), serializer: RawBytesCoding()
        ) { request, _ in
            let payload = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
            return try await dtmBranch(request.metadata) { context in
                callLog.calls.withLock { $0.append((method, context, payload)) }
                if callLog.failing.withLock({ $0.contains(method) }) { throw DtmError.failure("\(method) refused") }
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
    }
    let busiServer = GRPCServer(
        transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
        router: router)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await dtmServer.serve() }
        group.addTask { try await busiServer.serve() }
        group.addTask { try await invoker.run() }
        // Rounds no client waits for run in the scheduler, as in dtmd.
        group.addTask { try await Scheduler(coordinator: coordinator, cronInterval: .milliseconds(200)).run() }
        defer {
            group.cancelAll()
            invoker.shutdown()
            dtmServer.beginGracefulShutdown()
            busiServer.beginGracefulShutdown()
        }
        guard let dtmPort = try await dtmServer.listeningAddress?.ipv4?.port,
              let busiPort = try await busiServer.listeningAddress?.ipv4?.port else { throw DtmError.failure("servers did not start") }
        try await body(coordinator, "127.0.0.1:\(dtmPort)", "127.0.0.1:\(busiPort)/busi.Busi", callLog)
    }
    try await store.close()
}

@Suite(.serialized) struct DTMClientTests {
    @Test func msgSubmitCallsEveryBranchWithDtmMetadata() async throws {
        try await withSDKHarness { coordinator, dtmTarget, busi, log in
            try await withDtmClient(target: dtmTarget) { dtm in
                let gid = try await dtm.newGid()
                var msg = Msg(gid: gid)
                msg.options.waitResult = true
                try msg.add(busi + "/TransOut", [UInt8]([1, 2]))
                try msg.add(busi + "/TransIn", Data([3]))
                try await msg.submit(dtm)
                #expect(try await coordinator.transaction(gid)?.status == .succeed)
                let calls = log.calls.withLock { $0 }
                #expect(calls.map(\.method) == ["TransOut", "TransIn"])
                #expect(calls.map(\.payload) == [[1, 2], [3]])
                #expect(calls.first?.context?.gid == gid)
                #expect(calls.first?.context?.transType == "msg")
                #expect(calls.first?.context?.branchID == "01")
                #expect(calls.first?.context?.op == "action")
            }
        }
    }

    @Test func sagaFailureComesBackAsDtmFailure() async throws {
        try await withSDKHarness { coordinator, dtmTarget, busi, log in
            log.failing.withLock { $0.insert("TransIn") }
            try await withDtmClient(target: dtmTarget) { dtm in
                var saga = Saga(gid: try await dtm.newGid())
                saga.options.waitResult = true
                try saga.add(action: busi + "/TransOut", compensate: busi + "/TransOutRevert", Data())
                try saga.add(action: busi + "/TransIn", compensate: busi + "/TransInRevert", Data())
                await #expect(throws: DtmError.failure("TransIn refused")) { try await saga.submit(dtm) }
                #expect(log.calls.withLock { $0.map(\.method) } == ["TransOut", "TransIn", "TransInRevert", "TransOutRevert"])
                #expect(try await coordinator.transaction(saga.gid)?.status == .failed)
            }
        }
    }

    @Test func tccRegistersCallsTryThenConfirms() async throws {
        try await withSDKHarness { coordinator, dtmTarget, busi, log in
            try await withDtmClient(target: dtmTarget) { dtm in
                let gid = try await dtm.newGid()
                try await tccGlobalTransaction(dtm, gid: gid) { tcc in
                    try await tcc.callBranch(Data([9]), try: busi + "/Try", confirm: busi + "/Confirm", cancel: busi + "/Cancel")
                }
                let tryCall = try #require(log.calls.withLock { $0.first })
                #expect(tryCall.method == "Try")
                #expect(tryCall.context?.op == "try")
                #expect(tryCall.context?.branchID == "01")
                for _ in 0..<100 where try await coordinator.transaction(gid)?.status != .succeed {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(try await coordinator.transaction(gid)?.status == .succeed)
                #expect(log.calls.withLock { $0.map(\.method) } == ["Try", "Confirm"])
            }
        }
    }

    @Test func aFailingTryCancelsTheRegisteredBranches() async throws {
        try await withSDKHarness { coordinator, dtmTarget, busi, log in
            log.failing.withLock { $0.insert("Try") }
            try await withDtmClient(target: dtmTarget) { dtm in
                let gid = try await dtm.newGid()
                await #expect(throws: DtmError.failure("Try refused")) {
                    try await tccGlobalTransaction(dtm, gid: gid) { tcc in
                        try await tcc.callBranch(Data(), try: busi + "/Try", confirm: busi + "/Confirm", cancel: busi + "/Cancel")
                    }
                }
                for _ in 0..<100 where try await coordinator.transaction(gid)?.status != .failed {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(log.calls.withLock { $0.map(\.method) } == ["Try", "Cancel"])
            }
        }
    }
}
