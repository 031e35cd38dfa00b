import Coordinator
import DTMWire
public import Hummingbird

/// Records dtm's call metrics (`dtm_server_process_total`, `dtm_server_response_duration`) for
/// every route of the group it is added to, as dtm's gin middleware does: an answer of 400 or
/// more, or an error, counts as `fail`.
public struct DtmMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        func record(succeeded: Bool) {
            DtmMetrics.recordCall(type: DtmProtocol.http, path: request.uri.path, succeeded: succeeded, duration: ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            record(succeeded: response.status.code < 400)
            return response
        } catch {
            record(succeeded: false)
            throw error
        }
    }
}
