import Coordinator
import DTMWire
import Foundation
import Hummingbird
import Logging
import Modes

/// dtm's JSON-RPC API at `POST /api/json-rpc`: methods newGid, prepare, submit, abort and
/// registerBranch, whose params are the bodies of the HTTP routes of the same names. Every answer
/// is `{"jsonrpc":"2.0","id","error","result"}` with HTTP 200, but 400 for a request that cannot
/// be parsed; errors carry dtm's codes.
enum JsonRpc {
    /// A refusal with its JSON-RPC code.
    struct Refusal: Error {
        let code: JsonRpcErrorCode
        let message: String
    }

    static func answer(_ request: Request, coordinator: Coordinator, logger: Logger) async -> Response {
        var id: Any = ""
        do {
            let data = try await HttpApi.bytes(request)
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw Refusal(code: .parseError, message: "Parse json error: the body is not a JSON object")
            }
            if let given = object["id"], !(given is NSNull) {
                guard let text = given as? String else { throw Refusal(code: .parseError, message: "Parse json error: id must be a string") }
                id = text
            }
            guard let version = object["jsonrpc"] as? String, version == "2.0" else {
                throw Refusal(code: .invalidRequest, message: "Bad json request: jsonrpc must be \"2.0\"")
            }
            guard let text = id as? String, !text.isEmpty else {
                throw Refusal(code: .invalidRequest, message: "Bad json request: id must not be empty")
            }
            let method = object["method"] as? String ?? ""
            let result = try await call(method, params: object["params"], coordinator: coordinator)
            return envelope(id: id, error: nil, result: result)
        } catch let refusal as Refusal {
            return envelope(id: id, error: refusal, result: nil, status: refusal.code == .parseError ? .badRequest : .ok)
        } catch {
            let refusal = RequestError(error)
            refusal.logIfServerFault(api: "json-rpc", transport: DtmProtocol.http, gid: "", logger: logger)
            let code: JsonRpcErrorCode = refusal.result == .failure ? .failure : .internalError
            return envelope(id: id, error: Refusal(code: code, message: refusal.description), result: nil)
        }
    }

    /// Runs `method` with `params`; the result object, nil for methods that answer none.
    static func call(_ method: String, params: Any?, coordinator: Coordinator) async throws -> Any? {
        func body() throws -> JSONBody {
            guard let object = params as? [String: Any] else {
                throw RequestError.invalidArgument("params must be a JSON object")
            }
            return JSONBody(object)
        }
        switch method {
        case "newGid":
            return ["gid": coordinator.newGid()]
        case "prepare":
            try await coordinator.prepare(try HttpApi.transaction(body()))
        case "submit":
            try await coordinator.submit(try HttpApi.transaction(body()))
        case "abort":
            try await coordinator.abort(try HttpApi.transaction(body()))
        case "registerBranch":
            try await coordinator.registerBranch(try HttpApi.registration(body()))
        default:
            throw Refusal(code: .methodNotFound, message: "Method not found: \(method)")
        }
        return nil
    }

    static func envelope(id: Any, error: Refusal?, result: Any?, status: HTTPResponse.Status = .ok) -> Response {
        HttpApi.json([
            "jsonrpc": "2.0",
            "id": id,
            "error": error.map { ["code": $0.code.rawValue, "message": $0.message] as [String: Any] } ?? NSNull(),
            "result": result ?? NSNull(),
        ], status: status)
    }
}
