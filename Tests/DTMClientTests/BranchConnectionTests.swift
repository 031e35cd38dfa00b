@testable import DTMClient
import DTMClientTesting
import DTMDiscovery
import DTMWire
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import Testing

/// The SDK's own branch calls over the network (a TCC Try): one connection per server, kept.
@Suite struct BranchConnectionTests {
    @Test func callsToOneServerShareOneConnectionAndReturnTheReply() async throws {
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["Try"])
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [busi])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            let connections = ConnectionPool()
            let caller = PooledBranchCaller(resolver: DirectTargetResolver(), connections: connections)
            group.addTask { await connections.run() }
            let url = try GrpcBranchURL(parsing: "127.0.0.1:\(port)/busi.Busi/Try")
            for branch in ["01", "02", "03"] {
                let reply = try await caller.call(url, payload: [7], metadata: DtmMetadata(gid: "g", transType: "tcc", branchID: branch, op: "try", dtm: "d:1"))
                #expect(reply.isEmpty)
            }
            #expect(connections.count == 1)
            #expect(busi.calls.map(\.context?.branchID) == ["01", "02", "03"])
            #expect(busi.calls.allSatisfy { $0.context?.dtm == "d:1" && $0.payload == [7] })
            group.cancelAll()
        }
    }

    /// Each request goes to one of the target's current addresses: a server that cannot be
    /// reached is reported and the request sent to the next; a changed address set is followed.
    @Test func requestsFollowTheTargetsAddressesAndFailOver() async throws {
        let (a, b) = (GidServer(name: "a"), GidServer(name: "b"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.server.serve() }
            group.addTask { try await b.server.serve() }
            defer { a.server.beginGracefulShutdown(); b.server.beginGracefulShutdown() }
            let portA = try #require(try await a.server.listeningAddress?.ipv4?.port)
            let portB = try #require(try await b.server.listeningAddress?.ipv4?.port)
            // A port nothing listens on: the server registered there has died.
            let dead = try #require(HostPort("127.0.0.1:1"))
            let resolver = ScriptedResolver([dead, try #require(HostPort("127.0.0.1:\(portA)"))])
            let connections = ConnectionPool()
            group.addTask { await connections.run() }
            let client = DtmClient(
                connection: .discovered(resolver, connections), branches: PooledBranchCaller(resolver: resolver, connections: connections),
                target: "etcd://127.0.0.1:2379/dtmservice")
            #expect(try await client.newGid() == "a")
            #expect(resolver.failures == [dead])
            resolver.set([try #require(HostPort("127.0.0.1:\(portB)"))])
            #expect(try await client.newGid() == "b")
            group.cancelAll()
        }
    }
}

/// Answers addresses in turn from a list a test changes.
final class ScriptedResolver: TargetResolver {
    private let state: Mutex<(addresses: [HostPort], turn: Int, failures: [HostPort])>

    init(_ addresses: [HostPort]) { state = Mutex((addresses, 0, [])) }

    func set(_ addresses: [HostPort]) { state.withLock { $0.addresses = addresses; $0.turn = 0 } }
    var failures: [HostPort] { state.withLock { $0.failures } }

    func address(for target: String) async throws -> HostPort {
        state.withLock { state in
            defer { state.turn += 1 }
            return state.addresses[state.turn % state.addresses.count]
        }
    }

    func reportFailure(_ address: HostPort, of target: String) async {
        state.withLock { $0.failures.append(address) }
    }
}

/// A dtm stand-in that answers NewGid with its name.
struct GidServer {
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    init(name: String) {
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "dtmgimp.Dtm", method: "NewGid"),
            deserializer: RawBytesCoding(), serializer: RawBytesCoding()
        ) { request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: try Dtmgimp_DtmGidReply.with { $0.gid = name }.serializedBytes()))
        }
        server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext), router: router)
    }
}
