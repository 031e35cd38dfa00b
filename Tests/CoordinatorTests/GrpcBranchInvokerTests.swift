@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

/// Connections to branch services are replaced when they fail and closed when unused.
@Suite(.serialized) struct GrpcBranchInvokerTests {
    func call(_ url: String, timeout: Duration = .seconds(2)) -> BranchCall {
        BranchCall(gid: "g", transType: "msg", branchID: "01", op: "action", url: url, payload: Data(), headers: [:], timeout: timeout)
    }

    /// A free port on 127.0.0.1 (bound once by a server that is stopped again).
    func freePort() async throws -> Int {
        let probe = SwiftBranchServer()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await probe.server.serve() }
            defer { probe.server.beginGracefulShutdown() }
            return try #require(try await probe.server.listeningAddress?.ipv4?.port)
        }
    }

    /// Runs `body` while `busi` serves and `invoker` runs; stops both after it.
    func serving(_ busi: SwiftBranchServer, with invoker: GrpcBranchInvoker, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await busi.server.serve() }
            group.addTask { try await invoker.run() }
            defer {
                invoker.shutdown()
                busi.server.beginGracefulShutdown()
            }
            try await body()
        }
    }

    @Test func aRetryReachesATargetThatCameBackInsteadOfAConnectionBackingOff() async throws {
        let invoker = GrpcBranchInvoker()
        let port = try await freePort()
        let url = "127.0.0.1:\(port)/busi.Busi/A1"
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await invoker.run() }
            defer { invoker.shutdown() }
            let down = await invoker.invoke(call(url, timeout: .milliseconds(500)))
            #expect(down.outcome == .error)
            // The target comes back on the same port; the next call must not wait out a backoff.
            let busi = SwiftBranchServer(port: port)
            group.addTask { try await busi.server.serve() }
            defer { busi.server.beginGracefulShutdown() }
            _ = try await busi.server.listeningAddress
            let started = ContinuousClock.now
            let back = await invoker.invoke(call(url))
            #expect(back.outcome == .success, "\(back.message)")
            #expect(ContinuousClock.now - started < .seconds(1))
        }
    }

    @Test func aResolvedAddressTheRulesRefuseIsNotCalled() async throws {
        // A discovery target is checked once resolved: here the resolver answers dtmd's own port.
        struct Fixed: TargetResolver {
            func address(for target: String) async throws -> HostPort { HostPort("127.0.0.1:36790")! }
            func reportFailure(_ address: HostPort, of target: String) async {}
        }
        let targets = try BranchTargets(ports: [36790], localHosts: [])
        let invoker = GrpcBranchInvoker(resolver: Fixed(), check: { targets.refusal(host: $0, port: $1).map { .refused($0) } ?? .allowed(addresses: []) })
        let result = await invoker.invoke(call("etcd://127.0.0.1:2379/dtmservice/dtmgimp.Dtm/Abort"))
        #expect(result.outcome == .error)
        #expect(result.message.contains("resolved to 127.0.0.1:36790, which points at dtmd itself"))
    }

    @Test func aNameIsDialledAtTheAddressesItsCheckApproved() async throws {
        // The name does not resolve at all: the call succeeds only by going to the checked address.
        let invoker = GrpcBranchInvoker(check: { host, _ in host == "checked.invalid" ? .allowed(addresses: ["127.0.0.1"]) : .allowed(addresses: []) })
        let busi = SwiftBranchServer()
        try await serving(busi, with: invoker) {
            let port = try #require(try await busi.server.listeningAddress?.ipv4?.port)
            let pinned = await invoker.invoke(call("checked.invalid:\(port)/busi.Busi/A1"))
            #expect(pinned.outcome == .success, "\(pinned.message)")
            // Without the check's addresses the name is looked up, and does not resolve.
            #expect(await invoker.invoke(call("unchecked.invalid:\(port)/busi.Busi/A1", timeout: .milliseconds(500))).outcome == .error)
        }
    }

    @Test func shutdownDoesNotWaitOutTheBackoffOfAConnectionThatCannotBeMade() async throws {
        // A name that does not resolve leaves its client reconnecting with backoff; shutdown
        // must still end within its limit, not the transport's longest backoff (120 s).
        let invoker = GrpcBranchInvoker(shutdownLimit: .milliseconds(300))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await invoker.run() }
            #expect(await invoker.invoke(call("nowhere.invalid:9/busi.Busi/A1", timeout: .milliseconds(500))).outcome == .error)
            let stopping = ContinuousClock.now
            invoker.shutdown()
            try await group.waitForAll()
            #expect(ContinuousClock.now - stopping < .seconds(5))
        }
    }

    @Test func clientsOfAddressesNoLongerCalledAreClosed() async throws {
        let invoker = GrpcBranchInvoker(idleLimit: .milliseconds(200))
        let busi = SwiftBranchServer()
        try await serving(busi, with: invoker) {
            #expect(await invoker.invoke(call(try await busi.url("A1"))).outcome == .success)
            #expect(invoker.cachedClientCount == 1)
            try await Task.sleep(for: .milliseconds(700))
            #expect(invoker.cachedClientCount == 0)
            #expect(await invoker.invoke(call(try await busi.url("A1"))).outcome == .success, "a closed client is replaced")
        }
    }
}
