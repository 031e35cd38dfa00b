import AsyncHTTPClient
import DTMWire
import Foundation
import NIOCore
import NIOSSL
public import ServiceLifecycle

/// Calls HTTP branches as dtm does: query parameters gid, trans_type, branch_id and op; POST with
/// the stored payload as a JSON body when there is one (or the mode says so), else GET; Content-Type
/// application/json plus the transaction's BranchHeaders; RequestTimeout as the deadline.
/// Results by dtm's rules (`DtmResult(httpStatus:body:)`).
///
/// Connections are pooled by async-http-client. Run it as a service: graceful shutdown closes them.
public final class HttpBranchInvoker: BranchInvoker, Service {
    private let client: HTTPClient
    /// Whether a URL's host and port may be called (dtmd's branch-target rules), and for a name,
    /// which checked addresses to dial.
    private let check: TargetCheck

    /// An invoker whose `https://` calls verify the server's certificate against the system's
    /// roots and, when given, the CA certificates in `additionalCAFile` (PEM; dtmd's
    /// `BranchTLS.CAFile`), and which asks `check` before every branch call.
    public init(additionalCAFile: String? = nil, check: @escaping TargetCheck = { _, _ in .allowed(addresses: []) }) {
        self.check = check
        var configuration = HTTPClient.Configuration()
        if let additionalCAFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.file(additionalCAFile)]
            configuration.tlsConfiguration = tls
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }

    public func invoke(_ call: BranchCall) async -> BranchResult {
        guard var components = URLComponents(string: call.url), let (host, port) = httpHostAndPort(of: components) else {
            return BranchResult(.error, "branch URL '\(call.url)' is not a URL")
        }
        var call = call
        switch await check(host, port) {
        case let .refused(reason):
            return BranchResult(.error, "\(call.url) \(reason)")
        case let .allowed(addresses):
            // A plain-HTTP name whose addresses were checked is called at one of them (IPv4
            // first), with its name in Host; HTTPS keeps the name for the certificate.
            if components.scheme?.lowercased() == "http", let address = addresses.first(where: { !$0.contains(":") }) ?? addresses.first {
                for name in call.headers.keys where name.lowercased() == "host" { call.headers[name] = nil }
                call.headers["Host"] = components.port.map { "\(host):\($0)" } ?? host
                components.host = address.contains(":") ? "[\(address)]" : address
                if let pinned = components.string { call.url = pinned }
            }
        }
        if call.jsonRPC { return await invokeJSONRPC(call) }
        guard let url = call.dtmMetadata.httpBranchURL(components) else { return BranchResult(.error, "branch URL '\(call.url)' is not a URL") }
        let posts = !call.payload.isEmpty || call.postsEmptyPayload
        do {
            let (status, body) = try await send(posts ? call.payload : nil, to: url, headers: call.headers, timeout: call.timeout)
            return Self.result(status: status, body: body)
        } catch {
            return BranchResult(.error, "\(error)")
        }
    }

    /// POSTs a JSON `body` to `url`; the HTTP status, nil when the call failed.
    func post(_ body: Data, to url: String, timeout: Duration) async -> Int? {
        try? await send(body, to: url, headers: [:], timeout: timeout).status
    }

    /// dtm's JSON-RPC branch call: POST `{"jsonrpc":"2.0","method":<the URL's method=>,"id","params"}`
    /// to the URL, params being the payload's JSON object plus gid, trans_type, branch_id and op.
    func invokeJSONRPC(_ call: BranchCall) async -> BranchResult {
        guard let components = URLComponents(string: call.url) else {
            return BranchResult(.error, "branch URL '\(call.url)' is not a URL")
        }
        let method = components.queryItems?.first { $0.name == "method" }?.value ?? ""
        var params = (try? JSONSerialization.jsonObject(with: call.payload)) as? [String: Any] ?? [:]
        params["gid"] = call.gid
        params["trans_type"] = call.transType
        params["branch_id"] = call.branchID
        params["op"] = call.op
        let envelope: [String: Any] = ["jsonrpc": "2.0", "method": method, "id": UUID().uuidString, "params": params]
        guard let body = try? JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return BranchResult(.error, "the JSON-RPC request could not be encoded")
        }
        do {
            let (status, text) = try await send(body, to: call.url, headers: call.headers, timeout: call.timeout)
            return Self.jsonRPCResult(status: status, body: text)
        } catch {
            return BranchResult(.error, "\(error)")
        }
    }

    /// One request as dtm sends it: POST `body` (GET when nil) with Content-Type application/json
    /// and `headers`, within `timeout`; the status and the first MiB of the answer.
    private func send(_ body: Data?, to url: String, headers: [String: String], timeout: Duration) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = body == nil ? .GET : .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            request.headers.add(name: name, value: value)
        }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let parts = timeout.components
        let response = try await client.execute(request, timeout: .seconds(parts.seconds) + .nanoseconds(parts.attoseconds / 1_000_000_000))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    /// dtm's reading of a JSON-RPC branch's answer: the HTTP status rules first, then the error
    /// code (-32901 FAILURE, -32902 ONGOING, any other an error that is retried).
    static func jsonRPCResult(status: Int, body: String) -> BranchResult {
        let text = String(body.prefix(512))
        switch status {
        case 425: return BranchResult(.ongoing, text)
        case 409: return BranchResult(.failure, text)
        case 200: break
        default: return BranchResult(.error, "HTTP \(status): \(text)")
        }
        guard let answer = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else {
            return BranchResult(.error, "the JSON-RPC answer is not a JSON object: \(text)")
        }
        guard let error = answer["error"], !(error is NSNull) else { return BranchResult(.success) }
        let code = ((error as? [String: Any])?["code"] as? NSNumber)?.intValue
        let message = (error as? [String: Any])?["message"] as? String ?? text
        switch code.flatMap(JsonRpcErrorCode.init(rawValue:)) {
        case .failure: return BranchResult(.failure, message)
        case .ongoing: return BranchResult(.ongoing, message)
        default: return BranchResult(.error, "JSON-RPC error \(code.map(String.init) ?? "?"): \(message)")
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
