import Coordinator
import DTMWire
public import GRPCCore

/// Records dtm's call metrics (`dtm_server_process_total`, `dtm_server_response_duration`) for
/// every call of the service it is applied to: the API is the method name, the status what dtm
/// reads from the call's status code (`DtmResult`).
public struct DtmMetricsInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let start = ContinuousClock.now
        func record(_ result: DtmResult) {
            DtmMetrics.recordCall(type: DtmProtocol.grpc, api: context.descriptor.method, status: result.rawValue, duration: ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            switch response.accepted {
            case .success: record(.success)
            case let .failure(error): record(DtmResult(grpcCode: error.code))
            }
            return response
        } catch let error as RPCError {
            record(DtmResult(grpcCode: error.code))
            throw error
        } catch {
            record(.error)
            throw error
        }
    }
}
