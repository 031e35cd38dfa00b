import AsyncHTTPClient
import DTMWire
import Foundation
import NIOCore
import NIOHTTP1
import SwiftProtobuf

/// dtm's HTTP API (`/api/dtmsvr`, what Go's `dtmcli` and Python's `dtmcli` speak) as the
/// connection of a `DtmClient`: the same requests as over gRPC, in dtm's flat JSON bodies.
struct DtmHTTPAPI: Sendable {
    /// `http(s)://host:port/api/dtmsvr`.
    let server: String
    let client: HTTPClient
    /// Sent as `Authorization: Bearer <token>` when set (dtmd's `Auth.Tokens`).
    let token: String?
    /// How long one request to dtm may take.
    static let timeout: TimeAmount = .seconds(10)

    func newGid() async throws -> String {
        let answer = try await request(.GET, "newGid", body: nil)
        guard let gid = (try? JSONSerialization.jsonObject(with: answer)) .flatMap({ ($0 as? [String: Any])?["gid"] as? String }) else {
            throw DtmHTTPError.unreadableAnswer("newGid: \(String(decoding: answer, as: UTF8.self))")
        }
        return gid
    }

    func send(_ operation: DtmClient.GlobalOperation, _ request: Dtmgimp_DtmRequest) async throws {
        let route = switch operation {
        case .prepare: "prepare"
        case .submit: "submit"
        case .abort: "abort"
        }
        _ = try await self.request(.POST, route, body: try Self.body(of: request))
    }

    /// A branch registration as dtm's HTTP API takes it: one flat string map of the gid, the
    /// trans type, the branch id, the mode's fields (confirm and cancel, url, or a workflow
    /// step's op and status) and the payload as `data`.
    func registerBranch(_ request: Dtmgimp_DtmBranchRequest) async throws {
        var body: [String: String] = request.data
        body["gid"] = request.gid
        body["trans_type"] = request.transType
        body["branch_id"] = request.branchID
        if !request.busiPayload.isEmpty { body["data"] = try Self.text(request.busiPayload, "the branch payload") }
        _ = try await self.request(.POST, "registerBranch", body: body)
    }

    func prepareWorkflow(_ request: Dtmgimp_DtmRequest) async throws -> Dtmgimp_DtmProgressesReply {
        var body = try Self.body(of: request)
        body["protocol"] = "http"
        let answer = try await self.request(.POST, "prepareWorkflow", body: body)
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        do {
            return try Dtmgimp_DtmProgressesReply(jsonUTF8Data: answer, options: options)
        } catch {
            throw DtmHTTPError.unreadableAnswer("prepareWorkflow: \(error): \(String(decoding: answer.prefix(512), as: UTF8.self))")
        }
    }

    /// What can be done to a topic.
    enum TopicChange { case subscribe, unsubscribe, delete }

    /// `GET subscribe?topic=&url=&remark=`, `GET unsubscribe?topic=&url=`, `DELETE topic/<name>`.
    func topic(_ change: TopicChange, topic: String, url: String = "", remark: String = "") async throws {
        func query(_ items: [(String, String)]) -> String {
            var components = URLComponents()
            components.queryItems = items.map { URLQueryItem(name: $0.0, value: $0.1) }
            return components.percentEncodedQuery ?? ""
        }
        switch change {
        case .subscribe: _ = try await request(.GET, "subscribe?" + query([("topic", topic), ("url", url), ("remark", remark)]), body: nil)
        case .unsubscribe: _ = try await request(.GET, "unsubscribe?" + query([("topic", topic), ("url", url)]), body: nil)
        case .delete:
            let name = topic.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? topic
            _ = try await request(.DELETE, "topic/" + name, body: nil)
        }
    }

    /// The flat JSON body of prepare, submit and abort (WIRE §3): payloads travel as strings, so
    /// each must be UTF-8 text.
    static func body(of request: Dtmgimp_DtmRequest) throws -> [String: Any] {
        var body: [String: Any] = ["gid": request.gid, "trans_type": request.transType]
        if !request.customedData.isEmpty { body["custom_data"] = request.customedData }
        if !request.steps.isEmpty, request.steps != "null" {
            body["steps"] = try JSONSerialization.jsonObject(with: Data(request.steps.utf8))
        }
        if !request.binPayloads.isEmpty {
            body["payloads"] = try request.binPayloads.enumerated().map { index, payload in try text(payload, "payload \(index)") }
        }
        if !request.queryPrepared.isEmpty { body["query_prepared"] = request.queryPrepared }
        if !request.rollbackReason.isEmpty { body["rollback_reason"] = request.rollbackReason }
        if !request.reqExtra.isEmpty { body["req_extra"] = request.reqExtra }
        let options = request.transOptions
        if options.waitResult { body["wait_result"] = true }
        if options.timeoutToFail != 0 { body["timeout_to_fail"] = options.timeoutToFail }
        if options.retryInterval != 0 { body["retry_interval"] = options.retryInterval }
        if options.requestTimeout != 0 { body["request_timeout"] = options.requestTimeout }
        if options.retryLimit != 0 { body["retry_limit"] = options.retryLimit }
        if !options.branchHeaders.isEmpty { body["branch_headers"] = options.branchHeaders }
        return body
    }

    private static func text(_ bytes: Data, _ what: String) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw DtmHTTPError.payloadNotText(what) }
        return text
    }

    /// Sends one request to `server/route`; answers the body of a 200, throws dtm's FAILURE
    /// (409) and ONGOING (425) as `DtmError`, and any other status as `DtmHTTPError.status`.
    private func request(_ method: HTTPMethod, _ route: String, body: Any?) async throws -> Data {
        var request = HTTPClientRequest(url: server + "/" + route)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])))
        }
        let response = try await client.execute(request, timeout: Self.timeout)
        let answer = Data(Array(buffer: try await response.body.collect(upTo: 16 << 20)))
        let status = Int(response.status.code)
        if status == 200 { return answer }
        let message = ((try? JSONSerialization.jsonObject(with: answer)) as? [String: Any])?["message"] as? String
            ?? String(decoding: answer.prefix(512), as: UTF8.self)
        switch DtmResult(httpStatus: status, body: "") {
        case .failure: throw DtmError.failure(message)
        case .ongoing: throw DtmError.ongoing(message)
        case .success, .error: throw DtmHTTPError.status(status, message)
        }
    }
}

/// Calls an HTTP branch itself (a TCC Try, a workflow step) as dtm would: dtm's query
/// parameters, POST with the payload as the body (GET without one), Content-Type
/// application/json; answers the body, or dtm's reading of the status as `DtmError`.
struct HTTPBranchCall: Sendable {
    let client: HTTPClient

    func call(_ url: String, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8] {
        guard let target = metadata.httpBranchURL(url) else { throw DtmHTTPError.invalidURL(url) }
        var request = HTTPClientRequest(url: target)
        request.method = payload.isEmpty ? .GET : .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if !payload.isEmpty { request.body = .bytes(ByteBuffer(bytes: payload)) }
        let response = try await client.execute(request, timeout: DtmHTTPAPI.timeout)
        let body = try await response.body.collect(upTo: 16 << 20)
        let text = String(buffer: body)
        let status = Int(response.status.code)
        switch DtmResult(httpStatus: status, body: text) {
        case .success: return Array(buffer: body)
        case .failure: throw DtmError.failure(text)
        case .ongoing: throw DtmError.ongoing(text)
        case .error: throw DtmHTTPError.status(status, String(text.prefix(512)))
        }
    }
}

/// What went wrong talking HTTP to dtm or to an HTTP branch (besides dtm's FAILURE and ONGOING).
public enum DtmHTTPError: Error, Equatable, CustomStringConvertible {
    /// An answer that is neither 200 nor FAILURE nor ONGOING.
    case status(Int, String)
    /// An answer that does not read as dtm's JSON.
    case unreadableAnswer(String)
    /// dtm's HTTP API carries payloads as strings: this one is not UTF-8.
    case payloadNotText(String)
    /// A branch URL that is not a URL.
    case invalidURL(String)

    public var description: String {
        switch self {
        case let .status(code, message): return "HTTP \(code): \(message)"
        case let .unreadableAnswer(text): return "unreadable answer from dtm: \(text)"
        case let .payloadNotText(what): return "\(what) is not UTF-8 text, which dtm's HTTP API requires (use gRPC for bytes)"
        case let .invalidURL(url): return "'\(url)' is not a URL"
        }
    }
}
