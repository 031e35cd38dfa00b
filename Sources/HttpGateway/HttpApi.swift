public import Coordinator
import DTMWire
import Foundation
public import Hummingbird
public import Logging
import NIOCore
import Modes
import Projections
import TransactionStore

/// dtm's HTTP API (`/api/dtmsvr/*`, `/api/ping`) on the coordinator: the same requests as the gRPC
/// gateway, so the same request over either yields the same events. Bodies are read as real
/// clients send them (null for unset strings, extra keys ignored, steps as an array or a JSON
/// string); answers use dtm's envelope: 200 SUCCESS, 409 FAILURE, 425 ONGOING, 400 bad input, 500.
public enum HttpApi {
    /// The routes, ready for a Hummingbird application; with `tokens`, every route but ping and
    /// metrics needs one (and so do routes added to the router later).
    public static func router(
        coordinator: Coordinator, metrics: @escaping @Sendable () -> [UInt8], tokens: AccessTokens = AccessTokens([]),
        logger: Logger = Logger(label: "swiftdtm.http")
    ) -> Router<BasicRequestContext> {
        let router = Router()
        // First, so that every route added after it, here or by others, needs a token; only when
        // tokens are set (a middleware costs every request a hop).
        if tokens.required { router.add(middleware: AccessTokenMiddleware(tokens: tokens)) }
        router.get("/api/ping") { _, _ in json(["msg": "pong"]) }
        router.group("/api").add(middleware: DtmMetricsMiddleware()).post("json-rpc") { request, _ in
            await JsonRpc.answer(request, coordinator: coordinator, logger: logger)
        }
        router.get("/api/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics())))
        }
        let api = router.group("/api/dtmsvr").add(middleware: DtmMetricsMiddleware())
        api.get("newGid") { _, _ in json(["gid": coordinator.newGid(), "dtm_result": DtmResult.success.rawValue]) }
        api.get("version") { _, _ in json(["version": "swiftdtm-\(version)"]) }
        func command(_ path: String, _ body: @escaping @Sendable (Request) async throws -> Void) {
            api.post(RouterPath(stringLiteral: path)) { request, _ in
                await answer(path, logger: logger) {
                    try await body(request)
                    return succeeded
                }
            }
        }
        command("prepare") { try await coordinator.prepare(try await transaction($0)) }
        command("submit") { try await coordinator.submit(try await transaction($0)) }
        command("abort") { try await coordinator.abort(try await transaction($0)) }
        api.post("prepareWorkflow") { request, _ in
            await answer("prepareWorkflow", logger: logger) {
                let state = try await coordinator.prepareWorkflow(try await transaction(request))
                return [
                    "transaction": transactionJSON(state),
                    "progresses": TransactionModes.listedBranches(of: state).map { branchJSON($0, gid: state.gid) },
                ]
            }
        }
        for path in ["registerBranch", "registerTccBranch", "registerXaBranch"] {
            command(path) { try await coordinator.registerBranch(try await registration($0)) }
        }
        command("forceStop") { try await coordinator.forceStop(try JSONBody(try await body($0)).string("gid")) }
        command("resetNextCronTime") { try await coordinator.resetNextCronTime(try JSONBody(try await body($0)).string("gid")) }
        api.get("resetCronTime") { request, _ in
            await answer("resetCronTime", logger: logger) {
                let parameters = formParameters(request)
                let timeout = try number(parameters["timeout"], field: "timeout", default: 3 * coordinator.defaults.timeoutToFail, in: RequestBounds.timeoutToFail)
                let limit = try number(parameters["limit"], field: "limit", default: 100, in: 1...Int64(TransactionPage.maximumSize), unit: "transactions")
                let reset = try await coordinator.resetCronTime(timeout: timeout, limit: Int(limit))
                return ["succeed_count": reset.count, "has_remaining": reset.hasRemaining]
            }
        }
        api.get("subscribe") { request, _ in
            await answer("subscribe", logger: logger) {
                let parameters = formParameters(request)
                try await coordinator.subscribe(topic: text(parameters["topic"]), url: text(parameters["url"]), remark: text(parameters["remark"]))
                return succeeded
            }
        }
        api.get("unsubscribe") { request, _ in
            await answer("unsubscribe", logger: logger) {
                let parameters = formParameters(request)
                try await coordinator.unsubscribe(topic: text(parameters["topic"]), url: text(parameters["url"]))
                return succeeded
            }
        }
        api.delete("topic/:name") { _, context in
            await answer("deleteTopic", logger: logger) {
                try await coordinator.deleteTopic(context.parameters.get("name") ?? "")
                return succeeded
            }
        }
        api.get("queryKV") { request, _ in
            await answer("queryKV", logger: logger) {
                let parameters = formParameters(request)
                let record = try await coordinator.kvRecord(cat: text(parameters["cat"]), key: text(parameters["key"]))
                return ["kv": record.map { [kvJSON($0)] } ?? []]
            }
        }
        api.get("scanKV") { request, _ in
            await answer("scanKV", logger: logger) {
                let parameters = formParameters(request)
                let limit = try number(parameters["limit"], field: "limit", default: 100, in: 1...Int64(TransactionPage.maximumSize), unit: "records")
                let position = text(parameters["position"])
                let records = try await coordinator.kvRecords(cat: text(parameters["cat"]), after: position.isEmpty ? nil : position, limit: Int(limit))
                // dtm: an empty position when the page is not full, else where the next one starts.
                return ["kv": records.map(kvJSON), "next_position": records.count < limit ? "" : records.last?.key ?? ""]
            }
        }
        api.get("query") { request, _ in
            await answer("query", logger: logger) {
                guard let gid = formParameters(request)["gid"], !gid.isEmpty else {
                    throw RequestError.invalidArgument("gid is required")
                }
                let state = try await coordinator.transaction(gid)
                return [
                    "transaction": state.map(transactionJSON) ?? NSNull(),
                    "branches": state.map { TransactionModes.listedBranches(of: $0).map { branchJSON($0, gid: gid) } } ?? [],
                ]
            }
        }
        api.get("all") { request, _ in await answer("all", logger: logger) { try await all(request, coordinator: coordinator) } }
        return router
    }

    /// dtm's answer to a request that succeeded and returns nothing else.
    static var succeeded: [String: Any] { ["dtm_result": DtmResult.success.rawValue] }

    /// SwiftDTM's version, as `/api/dtmsvr/version` reports it.
    public static let version = "0.1.0"

    // MARK: Requests

    /// The largest request body accepted.
    static let maximumBodyBytes = 8 << 20

    static func body(_ request: Request) async throws -> [String: Any] {
        let data = try await bytes(request)
        guard !data.isEmpty else { throw RequestError.invalidArgument("the request body is empty; expected a JSON object") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw RequestError.invalidArgument("the request body is not a JSON object")
        }
        return object
    }

    /// The request body, at most `maximumBodyBytes`.
    static func bytes(_ request: Request) async throws -> Data {
        do {
            return Data(buffer: try await request.body.collect(upTo: maximumBodyBytes))
        } catch is NIOTooManyBytesError {
            throw RequestError.requestTooLarge("the request body is larger than \(maximumBodyBytes) bytes")
        }
    }

    /// dtm's JSON body read into dtm's request message, then converted as the gRPC gateway converts it.
    static func transaction(_ request: Request) async throws -> TransactionRequest {
        try transaction(JSONBody(try await body(request)))
    }

    /// The protocols a transaction's body may name (dtm's `protocol`; `http` when absent).
    static let bodyProtocols = [DtmProtocol.http, DtmProtocol.jsonRPC]

    static func transaction(_ body: JSONBody) throws -> TransactionRequest {
        var wire = Dtmgimp_DtmRequest()
        wire.gid = try body.string("gid")
        wire.transType = try body.string("trans_type")
        wire.steps = try body.jsonText("steps")
        // dtm's legacy form: a step's payload in `steps[i].data`, taken after `payloads`, in order.
        wire.binPayloads = try (body.strings("payloads") + legacyStepData(wire.steps)).map { Data($0.utf8) }
        wire.customedData = try body.optionalString("custom_data")
        wire.queryPrepared = try body.optionalString("query_prepared")
        wire.rollbackReason = try body.optionalString("rollback_reason")
        wire.transOptions.waitResult = try body.bool("wait_result")
        wire.transOptions.timeoutToFail = try body.integer("timeout_to_fail")
        wire.transOptions.requestTimeout = try body.integer("request_timeout")
        wire.transOptions.retryInterval = try body.integer("retry_interval")
        wire.transOptions.retryLimit = try body.integer("retry_limit")
        wire.transOptions.branchHeaders = try body.stringMap("branch_headers")
        wire.reqExtra = try body.stringMap("req_extra")
        if try body.bool("concurrent"), wire.customedData.isEmpty {
            wire.customedData = #"{"concurrent":true}"#
        }
        let named = try body.optionalString("protocol")
        guard named.isEmpty || bodyProtocols.contains(named) else {
            throw RequestError.invalidArgument("protocol must be one of \(bodyProtocols.joined(separator: ", ")), got '\(named)'")
        }
        return TransactionRequest(wire, transport: named.isEmpty ? DtmProtocol.http : named)
    }

    /// The non-empty `data` strings of the steps (dtm's setupPayloads); the Steps themselves are
    /// checked when the transaction is created.
    static func legacyStepData(_ steps: String) -> [String] {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(steps.utf8)), let array = parsed as? [Any] else { return [] }
        return array.compactMap { step in
            guard let data = (step as? [String: Any])?["data"] as? String, !data.isEmpty else { return nil }
            return data
        }
    }

    static func registration(_ request: Request) async throws -> BranchRegistrationRequest {
        try registration(JSONBody(try await body(request)))
    }

    static func registration(_ body: JSONBody) throws -> BranchRegistrationRequest {
        var registration = BranchRegistrationRequest()
        registration.gid = try body.string("gid")
        registration.transType = try body.string("trans_type")
        registration.branchID = try body.string("branch_id")
        registration.payload = Data(try body.optionalString("data").utf8)
        // TCC's URLs, XA's URL, a workflow step's op and status.
        for key in ["confirm", "cancel", "url", "op", "status"] {
            let value = try body.optionalString(key)
            if !value.isEmpty { registration.data[key] = value }
        }
        return registration
    }

    /// Runs a request and answers with dtm's envelope: the object `body` returns with 200, or the
    /// refusal with its status; the server's own faults are logged. (Metrics: `DtmMetricsMiddleware`.)
    static func answer(_ api: String, logger: Logger, _ body: () async throws -> [String: Any]) async -> Response {
        do {
            return json(try await body())
        } catch {
            let refusal = RequestError(error)
            refusal.logIfServerFault(api: api, transport: DtmProtocol.http, gid: "", logger: logger)
            var envelope: [String: Any] = ["message": refusal.description]
            if refusal.result == .failure || refusal.result == .ongoing { envelope["dtm_result"] = refusal.result.rawValue }
            let status = refusal.httpStatus
            return json(envelope, status: .init(code: status.code, reasonPhrase: status.reason))
        }
    }

    /// The query's parameters decoded as dtm (Go's `url.ParseQuery`) decodes them: `+` is a space,
    /// then percent escapes; the first value of a repeated name wins.
    static func formParameters(_ request: Request) -> [String: String] {
        var parameters = [String: String]()
        for pair in (request.uri.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ part: Substring) -> String {
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let name = decoded(parts[0])
            if parameters[name] == nil { parameters[name] = parts.count > 1 ? decoded(parts[1]) : "" }
        }
        return parameters
    }

    /// A query parameter's text; empty when absent.
    static func text(_ value: String?) -> String {
        value ?? ""
    }

    /// A whole-number query parameter: `fallback` when absent or empty, else within `range`.
    static func number(_ text: String?, field: String, default fallback: Int64, in range: ClosedRange<Int64>, unit: String = "seconds") throws -> Int64 {
        guard let text, !text.isEmpty else { return fallback }
        guard let value = Int64(text) else { throw RequestError.invalidArgument("\(field) must be a whole number, got '\(text)'") }
        return try RequestBounds.check(value, in: range, field: field, unit: unit)
    }

    static func all(_ request: Request, coordinator: Coordinator) async throws -> [String: Any] {
        let parameters = formParameters(request)
        let status = parameters["status"] ?? ""
        let transType = parameters["transType"] ?? ""
        let limitText = parameters["limit"] ?? "100"
        guard let limit = Int(limitText), limit > 0 else {
            throw RequestError.invalidArgument("limit must be a positive number")
        }
        var position: PageToken?
        if let token = parameters["position"], !token.isEmpty {
            guard let parsed = PageToken(text: token) else { throw RequestError.invalidArgument("position is not one this server returned") }
            position = parsed
        }
        /// A create-time bound in ms since 1970, as µs.
        func createTime(_ name: String) throws -> Int64? {
            guard let text = parameters[name], !text.isEmpty else { return nil }
            guard let milliseconds = Int64(text) else { throw RequestError.invalidArgument("\(name) must be a time in milliseconds since 1970") }
            return try RequestBounds.check(milliseconds, in: RequestBounds.createTimeMilliseconds, field: name, unit: "milliseconds") * 1000
        }
        let filter = TransactionFilter(
            status: status.isEmpty ? nil : TransactionStatus(dtmName: status) ?? .unspecified, transType: transType,
            createdFrom: try createTime("createTimeStart"), createdThrough: try createTime("createTimeEnd"))
        let page = try await coordinator.transactions(matching: filter, page: position, limit: TransactionPage.size(limit))
        return [
            "transactions": page.transactions.map(transactionJSON),
            "next_position": page.next?.text ?? "",
        ]
    }

    // MARK: Responses

    /// A transaction as dtm's `query` shows it.
    static func transactionJSON(_ state: TransactionState) -> [String: Any] {
        [
            "gid": state.gid,
            "trans_type": state.transType,
            "status": state.status.dtmName,
            "protocol": state.protocol,
            "custom_data": state.customData,
            "steps": state.steps,
            "query_prepared": state.queryPrepared,
            "rollback_reason": state.rollbackReason,
            "result": String(decoding: state.result, as: UTF8.self),
            "create_time": timeText(state.createTimeUs),
            "update_time": timeText(state.updateTimeUs),
            "finish_time": timeText(state.finishTimeUs),
            "next_cron_time": timeText(state.nextDueUs),
            "next_cron_interval": state.retryInterval,
            "options": optionsText(state.options),
        ]
    }

    /// A KV record as dtm's `queryKV` and `scanKV` show it.
    static func kvJSON(_ record: KVState) -> [String: Any] {
        [
            "id": record.id,
            "cat": record.cat,
            "k": record.key,
            "v": record.value,
            "version": record.version,
            "create_time": timeText(record.createTimeUs),
            "update_time": timeText(record.updateTimeUs),
        ]
    }

    /// A branch as dtm's `query` shows it.
    static func branchJSON(_ branch: BranchState, gid: String) -> [String: Any] {
        [
            "gid": gid,
            "branch_id": branch.branchID,
            "op": branch.op,
            "url": branch.url,
            "bin_data": branch.payload.base64EncodedString(),
            "status": branch.status.dtmName,
            "create_time": timeText(branch.createTimeUs),
            "update_time": timeText(branch.updateTimeUs),
            "finish_time": timeText(branch.finishTimeUs),
        ]
    }

    /// dtm keeps a transaction's options as a JSON string.
    static func optionsText(_ options: TransactionOptions) -> String {
        let object: [String: Any] = [
            "wait_result": options.waitResult,
            "timeout_to_fail": options.timeoutToFail,
            "retry_interval": options.retryInterval,
            "request_timeout": options.requestTimeout,
            "retry_limit": options.retryLimit,
            "branch_headers": options.branchHeaders,
            "concurrent": options.concurrent,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func timeText(_ microseconds: Int64) -> Any {
        guard microseconds > 0 else { return NSNull() }
        return Date(timeIntervalSince1970: Double(microseconds) / 1_000_000).formatted(.iso8601)
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Typed reads of a flat JSON request body; a wrong type is a 400 naming the field.
struct JSONBody {
    let object: [String: Any]

    init(_ object: [String: Any]) { self.object = object }

    private func present(_ key: String) -> Any? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        return value
    }

    func string(_ key: String) throws -> String {
        guard let value = present(key) else { throw RequestError.invalidArgument("\(key) is required") }
        guard let text = value as? String else { throw RequestError.invalidArgument("\(key) must be a string") }
        return text
    }

    func optionalString(_ key: String) throws -> String {
        present(key) == nil ? "" : try string(key)
    }

    func bool(_ key: String) throws -> Bool {
        guard let value = present(key) else { return false }
        guard let flag = value as? Bool else { throw RequestError.invalidArgument("\(key) must be true or false") }
        return flag
    }

    func integer(_ key: String) throws -> Int64 {
        guard let value = present(key) else { return 0 }
        if let number = value as? NSNumber {
            guard let whole = RequestBounds.wholeNumber(number) else {
                throw RequestError.invalidArgument("\(key) must be a whole number within 64 bits, got \(number)")
            }
            return whole
        }
        if let text = value as? String, let number = Int64(text) { return number }
        throw RequestError.invalidArgument("\(key) must be a whole number")
    }

    func strings(_ key: String) throws -> [String] {
        guard let value = present(key) else { return [] }
        guard let array = value as? [Any], let strings = array as? [String] else {
            throw RequestError.invalidArgument("\(key) must be an array of strings")
        }
        return strings
    }

    func stringMap(_ key: String) throws -> [String: String] {
        guard let value = present(key) else { return [:] }
        guard let map = value as? [String: String] else {
            throw RequestError.invalidArgument("\(key) must map strings to strings")
        }
        return map
    }

    /// A field that clients send either as JSON or as a string holding JSON, as a string.
    func jsonText(_ key: String) throws -> String {
        guard let value = present(key) else { return "" }
        if let text = value as? String { return text }
        guard JSONSerialization.isValidJSONObject(value) else { throw RequestError.invalidArgument("\(key) is not valid JSON") }
        return String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}
