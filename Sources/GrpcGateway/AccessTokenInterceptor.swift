public import Coordinator
public import GRPCCore

/// Refuses every call without one of dtmd's tokens (`authorization: Bearer <token>` metadata)
/// with UNAUTHENTICATED, before the service sees it.
public struct AccessTokenInterceptor: ServerInterceptor {
    let tokens: AccessTokens

    public init(tokens: AccessTokens) {
        self.tokens = tokens
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let authorization = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        guard tokens.accepts(authorization: authorization) else {
            throw RPCError(code: .unauthenticated, message: "a valid token is required: metadata authorization: Bearer <token>")
        }
        return try await next(request, context)
    }
}
