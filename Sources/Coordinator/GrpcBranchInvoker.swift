import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Projections
import ServiceLifecycle
import Synchronization

/// Calls gRPC branches without knowing their types: the stored payload bytes go out unchanged as
/// the request message of `/pkg.Svc/Method`, with dtm's `dtm-*` metadata; the response body is
/// ignored. One HTTP/2 connection (one `GRPCClient`) is kept per target and reused by every call.
///
/// Run it as a service: `run()` keeps the connections of every client it has created and closes
/// them on graceful shutdown.
public final class GrpcBranchInvoker: BranchInvoker, Service {
    private let clients = Mutex<[String: GRPCClient<HTTP2ClientTransport.Posix>]>([:])
    private let started: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
    private let startedContinuation: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation
    private let logger: Logger
    private let resolver: any TargetResolver

    public init(resolver: any TargetResolver = DirectTargetResolver(), logger: Logger = Logger(label: "swiftdtm.branch.grpc")) {
        (started, startedContinuation) = AsyncStream.makeStream()
        self.resolver = resolver
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { connections in
                for await client in self.started {
                    connections.addTask { try? await client.runConnections() }
                }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Closes every connection and refuses new calls.
    public func shutdown() {
        startedContinuation.finish()
        for client in clients.withLock({ Array($0.values) }) { client.beginGracefulShutdown() }
    }

    public func invoke(_ call: BranchCall) async -> BranchResult {
        let url: GrpcBranchURL
        let address: HostPort
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        do {
            url = try GrpcBranchURL(parsing: call.url)
            address = try await resolver.address(for: url.target)
            client = try self.client(for: address)
        } catch {
            return BranchResult(.error, "\(error)")
        }
        var metadata = Metadata()
        metadata.addString(call.gid, forKey: "dtm-gid")
        metadata.addString(call.transType, forKey: "dtm-trans_type")
        metadata.addString(call.branchID, forKey: "dtm-branch_id")
        metadata.addString(call.op, forKey: "dtm-op")
        metadata.addString("", forKey: "dtm-dtm")
        for (key, value) in call.headers.sorted(by: { $0.key < $1.key }) {
            metadata.addString(value, forKey: key.lowercased())
        }
        var options = CallOptions.defaults
        options.timeout = call.timeout
        do {
            try await client.unary(
                request: ClientRequest(message: [UInt8](call.payload), metadata: metadata),
                descriptor: MethodDescriptor(fullyQualifiedService: url.service, method: url.method),
                serializer: RawBytesCoding(), deserializer: RawBytesCoding(), options: options
            ) { response in _ = try response.message }
            return BranchResult(.success)
        } catch let error as RPCError {
            switch error.code {
            case .aborted: return BranchResult(.failure, error.message)
            case .failedPrecondition: return BranchResult(.ongoing, error.message)
            case .unavailable:
                await resolver.reportFailure(address, of: url.target)
                return BranchResult(.error, "\(error.code) (\(address)): \(error.message)")
            default: return BranchResult(.error, "\(error.code): \(error.message)")
            }
        } catch {
            return BranchResult(.error, "\(error)")
        }
    }

    private func client(for address: HostPort) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        try clients.withLock { clients in
            let key = address.description
            if let existing = clients[key] { return existing }
            let transport = try HTTP2ClientTransport.Posix(
                target: .dns(host: address.host, port: address.port), transportSecurity: .plaintext)
            let client = GRPCClient(transport: transport)
            clients[key] = client
            startedContinuation.yield(client)
            logger.debug("opened gRPC channel to \(key)")
            return client
        }
    }
}

/// Passes message bytes through unchanged, both ways.
public struct RawBytesCoding: MessageSerializer, MessageDeserializer {
    public init() {}

    public func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }

    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
