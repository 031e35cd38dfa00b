import Coordinator
import DTMWire
public import GRPCCore

/// Records dtm's call metrics (`dtm_server_process_total`, `dtm_server_response_duration`) for
/// every call of the service it is applied to, as dtm's gRPC interceptor does: the API is the
/// method's name, lower-cased; a call that answers an error counts as `fail`.
public struct DtmMetricsInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        func record(succeeded: Bool) {
            DtmMetrics.recordCall(type: DtmProtocol.grpc, path: context.descriptor.fullyQualifiedMethod, succeeded: succeeded,
                                  duration: ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .success: record(succeeded: true)
            case .failure: record(succeeded: false)
            }
            return response
        } catch {
            record(succeeded: false)
            throw error
        }
    }
}
