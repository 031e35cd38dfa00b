@testable import DTMClient
import DTMClientTesting
import DTMDiscovery
import DTMWire
import GRPCCore
import GRPCNIOTransportHTTP2
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
            let resolver = DiscoveryResolver()
            let caller = PooledBranchCaller(resolver: resolver)
            group.addTask { try await resolver.run() }
            group.addTask { await caller.run() }
            let url = try GrpcBranchURL(parsing: "127.0.0.1:\(port)/busi.Busi/Try")
            for branch in ["01", "02", "03"] {
                let reply = try await caller.call(url, payload: [7], metadata: DtmMetadata(gid: "g", transType: "tcc", branchID: branch, op: "try", dtm: "d:1"))
                #expect(reply.isEmpty)
            }
            #expect(caller.connectionCount == 1)
            #expect(busi.calls.map(\.context?.branchID) == ["01", "02", "03"])
            #expect(busi.calls.allSatisfy { $0.context?.dtm == "d:1" && $0.payload == [7] })
            group.cancelAll()
        }
    }
}
