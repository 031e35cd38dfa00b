@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import Foundation
import NIOCore
import NIOPosix
import Projections
import Synchronization
import Testing

@Suite struct HttpBranchTests {
    @Test func answersAreReadByDtmsRules() {
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"SUCCESS"}"#).outcome == .success)
        #expect(HttpBranchInvoker.result(status: 200, body: "").outcome == .success)
        #expect(HttpBranchInvoker.result(status: 425, body: "").outcome == .ongoing)
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"ONGOING"}"#).outcome == .ongoing)
        #expect(HttpBranchInvoker.result(status: 409, body: "").outcome == .failure)
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"FAILURE"}"#).outcome == .failure)
        let error = HttpBranchInvoker.result(status: 502, body: "bad gateway")
        #expect(error.outcome == .error)
        #expect(error.message == "HTTP 502: bad gateway")
    }

    @Test func httpURLsAreBranchURLsToo() throws {
        try RequestValidation.url("http://localhost:8081/api/busi/TransOut", field: "Steps[0].action")
        try RequestValidation.url("https://busi.example/api/TransIn?x=1", field: "Steps[0].action")
        #expect(throws: RequestError.self) { try RequestValidation.url("http:///nohost", field: "Steps[0].action") }
        #expect(isHTTPBranchURL("http://a/b"))
        #expect(!isHTTPBranchURL("localhost:1/a.B/C"))
    }

    @Test func aNameIsCalledAtTheAddressItsCheckApprovedWithItsNameInHost() async throws {
        let server = try await OneAnswerHTTPServer.start()
        let invoker = HttpBranchInvoker(check: { host, _ in host == "checked.invalid" ? .allowed(addresses: ["127.0.0.1"]) : .allowed(addresses: []) })
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await invoker.run() }
            defer { group.cancelAll() }
            let call = BranchCall(gid: "g", transType: "saga", branchID: "01", op: "action",
                                  url: "http://checked.invalid:\(server.port)/api/TransIn", payload: Data("{}".utf8), headers: [:], timeout: .seconds(2))
            // The name does not resolve: only the checked address can have been dialled.
            let result = await invoker.invoke(call)
            #expect(result.outcome == .success, "\(result.message)")
            let request = server.recorder.requests.withLock { $0.joined() }.lowercased()
            #expect(request.contains("host: checked.invalid:\(server.port)\r\n"))
            #expect(request.hasPrefix("post /api/transin?"))
        }
        try await server.channel.close()
    }
}

/// A TCP server on 127.0.0.1 that answers each request with `200 OK` and keeps what it read.
private struct OneAnswerHTTPServer {
    let channel: any Channel
    let recorder: Recorder
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start() async throws -> OneAnswerHTTPServer {
        let recorder = Recorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(Answer(recorder: recorder)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return OneAnswerHTTPServer(channel: channel, recorder: recorder)
    }

    final class Recorder: Sendable {
        let requests = Mutex<[String]>([])
    }

    final class Answer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let recorder: Recorder
        init(recorder: Recorder) { self.recorder = recorder }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            recorder.requests.withLock { $0.append(text) }
            guard text.contains("\r\n\r\n") else { return }
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")), promise: nil)
        }
    }
}
