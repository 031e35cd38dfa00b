import DTMClient
import DTMClientTesting
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

/// dtm's Go server calls branches with `content-type: application/grpc+dtm_raw`: a branch server
/// built with the SDK accepts that once configured (`acceptDtmRawContentType`), checked with a raw
/// HTTP/2 request from curl (a client we did not write).
@Suite struct DtmRawContentTypeTests {
    /// Posts one gRPC message with `contentType` to `busi.Busi/Try` on a fresh server; curl's
    /// verbose output (status line, headers and trailers).
    func post(contentType: String, acceptingDtmRaw: Bool, busi: ScriptedBranches) async throws -> String {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        if acceptingDtmRaw { config.acceptDtmRawContentType() }
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext, config: config),
            services: [busi])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            let body = FileManager.default.temporaryDirectory.appendingPathComponent("dtm-raw-\(UUID().uuidString)")
            try Data([0, 0, 0, 0, 1, 7]).write(to: body)  // not compressed, 1 byte: 7
            defer { try? FileManager.default.removeItem(at: body) }
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = [
                "-sS", "-v", "--http2-prior-knowledge", "-X", "POST", "-o", "/dev/null", "--max-time", "10",
                "-H", "content-type: \(contentType)", "-H", "te: trailers",
                "-H", "dtm-gid: raw-gid", "-H", "dtm-trans_type: tcc", "-H", "dtm-branch_id: 01", "-H", "dtm-op: try",
                "--data-binary", "@\(body.path)", "http://127.0.0.1:\(port)/busi.Busi/Try",
            ]
            let output = Pipe()
            curl.standardError = output
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                curl.terminationHandler = { _ in done.resume() }
                do { try curl.run() } catch { done.resume(throwing: error) }
            }
            return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
    }

    @Test func dtmsRawContentTypeIsServedOnceAccepted() async throws {
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["Try"])
        let answer = try await post(contentType: "application/grpc+dtm_raw", acceptingDtmRaw: true, busi: busi)
        #expect(answer.contains("< HTTP/2 200"), "\(answer)")
        #expect(answer.contains("< grpc-status: 0"), "\(answer)")
        #expect(busi.calls.map(\.payload) == [[7]])
        #expect(busi.calls.first?.context?.branchID == "01")
    }

    @Test func withoutItTheTransportRefusesAsBefore() async throws {
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["Try"])
        let refused = try await post(contentType: "application/grpc+dtm_raw", acceptingDtmRaw: false, busi: busi)
        #expect(refused.contains("< HTTP/2 415"), "\(refused)")
        // Other content types stay refused even when dtm_raw is accepted.
        let other = try await post(contentType: "application/grpc+json", acceptingDtmRaw: true, busi: busi)
        #expect(other.contains("< HTTP/2 415"), "\(other)")
        #expect(busi.calls.isEmpty)
    }
}
