public import GRPCCore
public import ServiceLifecycle

/// Runs a gRPC server (a branch service, or dtmd's API) as a swift-service-lifecycle service:
/// graceful shutdown stops accepting calls and drains the in-flight ones.
public struct GRPCServerService<Transport: ServerTransport>: Service {
    let server: GRPCServer<Transport>

    public init(server: GRPCServer<Transport>) {
        self.server = server
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
