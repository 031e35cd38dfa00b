import AsyncHTTPClient
import DTMWire
import Foundation
import NIOCore
public import ServiceLifecycle

/// Calls HTTP branches as dtm does: query parameters gid, trans_type, branch_id and op; POST with
/// the stored payload as a JSON body when there is one (or the mode says so), else GET; Content-Type
/// application/json plus the transaction's BranchHeaders; RequestTimeout as the deadline.
/// Results by dtm's rules (`DtmResult(httpStatus:body:)`).
///
/// Connections are pooled by async-http-client. Run it as a service: graceful shutdown closes them.
public final class HttpBranchInvoker: BranchInvoker, Service {
    private let client = HTTPClient(eventLoopGroupProvider: .singleton)

    public init() {}

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }

    public func invoke(_ call: BranchCall) async -> BranchResult {
        guard var components = URLComponents(string: call.url) else {
            return BranchResult(.error, "branch URL '\(call.url)' is not a URL")
        }
        components.queryItems = (components.queryItems ?? []) + [
            URLQueryItem(name: "gid", value: call.gid),
            URLQueryItem(name: "trans_type", value: call.transType),
            URLQueryItem(name: "branch_id", value: call.branchID),
            URLQueryItem(name: "op", value: call.op),
        ]
        guard let url = components.string else { return BranchResult(.error, "branch URL '\(call.url)' is not a URL") }
        var request = HTTPClientRequest(url: url)
        let post = !call.payload.isEmpty || call.postsEmptyPayload
        request.method = post ? .POST : .GET
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in call.headers.sorted(by: { $0.key < $1.key }) {
            request.headers.add(name: name, value: value)
        }
        if post { request.body = .bytes(ByteBuffer(bytes: call.payload)) }
        do {
            let timeout = call.timeout.components
            let response = try await client.execute(
                request, timeout: .seconds(timeout.seconds) + .nanoseconds(timeout.attoseconds / 1_000_000_000))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            return Self.result(status: Int(response.status.code), body: body)
        } catch {
            return BranchResult(.error, "\(error)")
        }
    }

    /// dtm's reading of an HTTP branch's answer.
    static func result(status: Int, body: String) -> BranchResult {
        let text = String(body.prefix(512))
        switch DtmResult(httpStatus: status, body: body) {
        case .success: return BranchResult(.success)
        case .error: return BranchResult(.error, "HTTP \(status): \(text)")
        case let result: return BranchResult(result, text)
        }
    }
}

/// Sends each call to the invoker for its URL's protocol: `http(s)://` URLs over HTTP, the rest
/// over gRPC. A transaction may mix both.
public struct RoutingBranchInvoker: BranchInvoker {
    let grpc: any BranchInvoker
    let http: any BranchInvoker

    public init(grpc: any BranchInvoker, http: any BranchInvoker) {
        self.grpc = grpc
        self.http = http
    }

    public func invoke(_ call: BranchCall) async -> BranchResult {
        isHTTPBranchURL(call.url) ? await http.invoke(call) : await grpc.invoke(call)
    }
}
