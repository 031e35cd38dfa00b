public import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// What etcd answered when it refused a request, or that no endpoint could be reached.
public struct EtcdError: Error, CustomStringConvertible {
    public let description: String
}

/// A small etcd v3 client over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/put`,
/// `/v3/lease/grant|keepalive|revoke`, `/v3/watch`, `/v3/auth/authenticate`), which etcd 3.4 and
/// 3.5 serve on the client port.
///
/// Why the JSON gateway rather than etcd's gRPC API: keepalive becomes a plain unary request
/// (gRPC makes it a bidirectional stream), no etcd protos need generating or committing, and the
/// HTTP client is one dtmd already runs for HTTP branches. Watch is a chunked HTTP response of
/// newline-separated JSON objects.
///
/// Several endpoints fail over: a request that cannot connect moves on to the next endpoint, and
/// the one that answered is tried first next time. With credentials, the client authenticates and
/// sends the token, authenticating again when etcd says the token is no longer valid. With TLS
/// (`EtcdAccess`), every request goes to `https://` with its CA and client certificate.
public final class EtcdClient: Sendable {
    public let endpoints: [String]
    let credentials: (user: String, password: String)?
    private let http: HTTPClient
    private let tls: TLSConfiguration?
    private let scheme: String
    private let state = Mutex<(preferred: Int, token: String?)>((0, nil))

    /// A client of the etcd cluster at `endpoints` (`host:port`); `user` and `password`, when the
    /// target names them, take the place of `access`'s account.
    public init(endpoints: [String], user: String? = nil, password: String? = nil, access: EtcdAccess = .plain, http: HTTPClient = .shared) {
        self.endpoints = endpoints
        let account = access.credentials(user: user, password: password)
        self.credentials = account.user.map { ($0, account.password ?? "") }
        self.http = http
        self.tls = access.tls
        self.scheme = access.usesTLS ? "https" : "http"
    }

    // MARK: Leases and keys

    /// A new lease of `ttl` seconds; its id.
    public func grantLease(ttl: Int) async throws -> Int64 {
        let reply = try await call("lease/grant", ["TTL": String(ttl)])
        guard let id = int64(reply["ID"]), id != 0 else { throw EtcdError(description: "lease grant answered no ID: \(reply)") }
        return id
    }

    /// Renews `lease`; its remaining TTL, 0 when etcd no longer knows it.
    public func keepAlive(_ lease: Int64) async throws -> Int64 {
        let reply = try await call("lease/keepalive", ["ID": String(lease)])
        return int64((reply["result"] as? [String: Any])?["TTL"]) ?? 0
    }

    /// Ends `lease`, deleting every key attached to it.
    public func revokeLease(_ lease: Int64) async throws {
        _ = try await call("lease/revoke", ["ID": String(lease)])
    }

    /// Puts `key` = `value`, attached to `lease` (0 = none).
    public func put(_ key: String, _ value: String, lease: Int64 = 0) async throws {
        var body: [String: Any] = ["key": base64(key), "value": base64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        _ = try await call("kv/put", body)
    }

    /// Every key under `prefix` with its value, and the store's revision when read.
    public func range(prefix: String) async throws -> (pairs: [(key: String, value: String)], revision: Int64) {
        let reply = try await call("kv/range", ["key": base64(prefix), "range_end": Data(prefixEnd(prefix)).base64EncodedString()])
        let pairs = (reply["kvs"] as? [[String: Any]] ?? []).compactMap { kv -> (String, String)? in
            guard let key = decode(kv["key"]) else { return nil }
            return (key, decode(kv["value"]) ?? "")
        }
        let revision = int64((reply["header"] as? [String: Any])?["revision"]) ?? 0
        return (pairs, revision)
    }

    /// A change under a watched prefix.
    public enum Change: Sendable, Equatable {
        case put(key: String, value: String)
        case delete(key: String)
    }

    /// Changes under `prefix` from `revision` on, until the stream is cancelled or the connection
    /// ends (then it throws, and the caller watches again from its last revision).
    public func watch(prefix: String, fromRevision revision: Int64) async throws -> AsyncThrowingStream<(changes: [Change], revision: Int64), any Error> {
        let body: [String: Any] = ["create_request": [
            "key": base64(prefix), "range_end": Data(prefixEnd(prefix)).base64EncodedString(), "start_revision": String(revision),
        ]]
        let response = try await send("watch", body, timeout: .hours(24 * 365))
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = Data()
                do {
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let newline = pending.firstIndex(of: 0x0A) {
                            let line = pending[pending.startIndex..<newline]
                            pending.removeSubrange(pending.startIndex...newline)
                            guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any],
                                  let result = object["result"] as? [String: Any] else { continue }
                            let changes = (result["events"] as? [[String: Any]] ?? []).compactMap(self.change)
                            let revision = int64((result["header"] as? [String: Any])?["revision"]) ?? 0
                            if !changes.isEmpty { continuation.yield((changes, revision)) }
                        }
                    }
                    continuation.finish(throwing: EtcdError(description: "the watch connection ended"))
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    private func change(_ event: [String: Any]) -> Change? {
        guard let kv = event["kv"] as? [String: Any], let key = decode(kv["key"]) else { return nil }
        if (event["type"] as? String) == "DELETE" { return .delete(key: key) }
        return .put(key: key, value: decode(kv["value"]) ?? "")
    }

    // MARK: Transport

    /// POSTs `body` to `/v3/<path>` and returns the decoded JSON answer.
    func call(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let response = try await send(path, body, timeout: .seconds(5))
        let data = Data(try await response.body.collect(upTo: 4 << 20).readableBytesView)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        if response.status != .ok || object["error"] != nil || object["message"] != nil && object["code"] != nil {
            let message = object["message"] as? String ?? object["error"] as? String ?? String(decoding: data, as: UTF8.self)
            if credentials != nil, message.contains("token") {
                state.withLock { $0.token = nil }  // the next request authenticates again
            }
            throw EtcdError(description: "etcd /v3/\(path): \(message)")
        }
        return object
    }

    /// Sends one request, failing over across the endpoints that cannot be reached.
    private func send(_ path: String, _ body: [String: Any], timeout: TimeAmount) async throws -> HTTPClientResponse {
        let (first, cachedToken) = state.withLock { ($0.preferred, $0.token) }
        var token = cachedToken
        var lastError: any Error = EtcdError(description: "no etcd endpoint")
        for offset in endpoints.indices {
            let index = (first + offset) % endpoints.count
            do {
                if credentials != nil, token == nil { token = try await authenticate(endpoints[index]) }
                var request = HTTPClientRequest(url: "\(scheme)://\(endpoints[index])/v3/\(path)")
                request.tlsConfiguration = tls
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                if let token { request.headers.add(name: "Authorization", value: token) }
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
                let response = try await http.execute(request, timeout: timeout)
                state.withLock { $0.preferred = index }
                return response
            } catch {
                lastError = error
            }
        }
        throw EtcdError(description: "no etcd endpoint of \(endpoints.joined(separator: ",")) answered: \(lastError)")
    }

    private func authenticate(_ endpoint: String) async throws -> String {
        guard let credentials else { throw EtcdError(description: "no credentials") }
        var request = HTTPClientRequest(url: "\(scheme)://\(endpoint)/v3/auth/authenticate")
        request.tlsConfiguration = tls
        request.method = .POST
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["name": credentials.user, "password": credentials.password])))
        let response = try await http.execute(request, timeout: .seconds(5))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let token = object["token"] as? String else {
            throw EtcdError(description: "etcd refused the credentials of '\(credentials.user)': \(String(decoding: data, as: UTF8.self))")
        }
        state.withLock { $0.token = token }
        return token
    }
}

private func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

private func decode(_ value: Any?) -> String? {
    guard let text = value as? String, let data = Data(base64Encoded: text) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

private func int64(_ value: Any?) -> Int64? {
    if let text = value as? String { return Int64(text) }
    return (value as? NSNumber)?.int64Value
}

/// The end of the key range that holds every key starting with `prefix`.
func prefixEnd(_ prefix: String) -> [UInt8] {
    var bytes = Array(prefix.utf8)
    while let last = bytes.last {
        if last < 0xFF {
            bytes[bytes.count - 1] = last + 1
            return bytes
        }
        bytes.removeLast()
    }
    return [0]
}
