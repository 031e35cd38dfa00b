import Coordinator
import Foundation
import Hummingbird
import Projections

/// dtm's HTTP API on the coordinator. For now: `GET /api/ping` and `GET /api/dtmsvr/query`, with
/// dtm's JSON shapes.
public enum HttpApi {
    /// The routes, ready for a Hummingbird application.
    public static func router(coordinator: Coordinator) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/api/ping") { _, _ in json(["msg": "pong"]) }
        router.get("/api/dtmsvr/query") { request, _ in
            guard let gid = request.uri.queryParameters["gid"].map(String.init), !gid.isEmpty else {
                return json(["message": "gid is required"], status: .badRequest)
            }
            let state = try coordinator.transaction(gid)
            return json([
                "transaction": state.map(transactionJSON) ?? NSNull(),
                "branches": state.map { $0.branches.map { branchJSON($0, gid: gid) } } ?? [],
            ])
        }
        return router
    }

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
