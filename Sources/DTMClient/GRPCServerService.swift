import GRPCCore
import GRPCNIOTransportHTTP2
import ServiceLifecycle

/// Runs a gRPC server (a branch service, or dtmd's API) as a swift-service-lifecycle service:
/// graceful shutdown stops accepting calls and drains the in-flight ones.
public struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    public init(server: GRPCServer<HTTP2ServerTransport.Posix>) {
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
