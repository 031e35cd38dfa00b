public import DTMClient
public import DTMWire
import Foundation
public import Hummingbird

extension RouterMethods {
    /// Serves a dtm HTTP branch at `path`, for GET and POST (dtm posts when the branch has a
    /// payload, else gets). `handler` receives the request and dtm's query parameters (gid,
    /// trans_type, branch_id, op) as a `BranchContext`; returning answers dtm's SUCCESS (200
    /// `{"dtm_result":"SUCCESS"}`), throwing `DtmError.failure` its FAILURE (409), throwing
    /// `DtmError.ongoing` its ONGOING (425), any other error 500, which dtm retries. A call
    /// without dtm's parameters is refused with 400 naming the one missing.
    @discardableResult
    public func dtmBranch(
        _ path: RouterPath, use handler: @escaping @Sendable (Request, Context, BranchContext) async throws -> Void
    ) -> Self {
        let respond: @Sendable (Request, Context) async throws -> Response = { request, context in
            await dtmBranchResponse(request) { branch in try await handler(request, context, branch) }
        }
        on(path, method: .get, use: respond)
        on(path, method: .post, use: respond)
        return self
    }

    /// Serves the HTTP callback through which dtm resumes the unfinished workflows of
    /// `workflows` (made with `Workflows(client:callbackURL:)` naming this path): dtm's `op` is
    /// the workflow's name, the body its input; the answer is the workflow's outcome (dtm only
    /// logs it).
    @discardableResult
    public func dtmWorkflowCallback(_ path: RouterPath, _ workflows: Workflows) -> Self {
        dtmBranch(path) { request, _, branch in
            let input = try await request.body.collect(upTo: workflowInputLimit)
            try await workflows.execute(branch.op, gid: branch.gid, payload: Array(buffer: input))
        }
    }
}

/// The largest workflow input the callback reads.
let workflowInputLimit = 16 << 20

/// Runs `body` with the branch context of `request` and answers as dtm expects.
func dtmBranchResponse(_ request: Request, _ body: (BranchContext) async throws -> Void) async -> Response {
    let query = request.uri.queryParameters
    var values = [String: String]()
    for name in ["gid", "trans_type", "branch_id", "op"] {
        guard let value = query.get(name), !value.isEmpty else {
            return answer(.badRequest, ["message": "dtm's query parameter \(name) is missing"])
        }
        values[name] = value
    }
    let context = BranchContext(
        gid: values["gid"] ?? "", transType: values["trans_type"] ?? "", branchID: values["branch_id"] ?? "", op: values["op"] ?? "")
    do {
        try await body(context)
        return answer(.ok, ["dtm_result": DtmResult.success.rawValue])
    } catch let error as DtmError {
        switch error {
        case let .failure(message): return answer(.conflict, ["dtm_result": DtmResult.failure.rawValue, "message": message])
        case let .ongoing(message): return answer(.tooEarly, ["dtm_result": DtmResult.ongoing.rawValue, "message": message])
        }
    } catch {
        return answer(.internalServerError, ["message": "\(error)"])
    }
}

private func answer(_ status: HTTPResponse.Status, _ object: [String: String]) -> Response {
    let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
}

extension HTTPResponse.Status {
    /// 425, dtm's ONGOING.
    static let tooEarly = HTTPResponse.Status(code: 425, reasonPhrase: "Too Early")
}
