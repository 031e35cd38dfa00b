import Coordinator
import DTMWire
public import Hummingbird

/// Records dtm's call metrics (`dtm_server_process_total`, `dtm_server_response_duration`) for
/// every route of the group it is added to: the API is the last path segment, the status what
/// dtm reads from the HTTP status (`DtmResult`).
public struct DtmMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let api = request.uri.path.split(separator: "/").last.map(String.init) ?? ""
        func record(_ result: DtmResult) {
            DtmMetrics.recordCall(type: DtmProtocol.http, api: api, status: result.rawValue, duration: ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            record(DtmResult(httpStatus: Int(response.status.code), body: ""))
            return response
        } catch {
            record(.error)
            throw error
        }
    }
}
