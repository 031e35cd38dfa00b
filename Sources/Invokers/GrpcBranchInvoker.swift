public import DTMWire
import Foundation
import GRPCCore
import NIOCore
import NIOSSL
public import GRPCNIOTransportHTTP2
public import Logging
public import ServiceLifecycle
import Synchronization

/// Calls gRPC branches without knowing their types: the stored payload bytes go out unchanged as
/// the request message of `/pkg.Svc/Method`, with dtm's `dtm-*` metadata; the response body is
/// ignored. One HTTP/2 connection (one `GRPCClient`) is kept per address and reused by every call.
///
/// A connection that fails is never used again: a call that fails in the transport itself (the
/// stream or connection closed under it, a channel backing off after a failure — not an
/// UNAVAILABLE the branch answered) drops that client and is made again at once on a fresh
/// connection, up to `transportAttempts` times. Branch calls are idempotent by dtm's contract,
/// so a repeat is safe. Clients unused for `idleLimit` (addresses that left service discovery)
/// are closed.
///
/// Run it as a service: `run()` keeps the connections of every client it has created and closes
/// them on graceful shutdown.
public final class GrpcBranchInvoker: BranchInvoker, Service {
    /// A cached client and when a call last used it.
    private struct Entry {
        /// Its key in `clients`.
        let key: String
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        var lastUsed: ContinuousClock.Instant
    }

    /// Cached clients by address (`host:port`).
    private let clients = Mutex<[String: Entry]>([:])
    private let started: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
    private let startedContinuation: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation
    /// Finished when shutdown begins.
    private let stopping: AsyncStream<Never>
    private let stoppingContinuation: AsyncStream<Never>.Continuation
    /// How long shutdown waits for connections to close before cancelling them.
    private let shutdownLimit: Duration
    private let logger: Logger
    private let resolver: any TargetResolver
    private let transportAttempts: Int
    private let idleLimit: Duration
    /// Whether an address (the URL's, or what its discovery target resolved to) may be called
    /// (dtmd's branch-target rules), and for a name, which checked addresses to dial.
    private let check: TargetCheck
    /// The addresses called over TLS (dtmd's `BranchTLS.Grpc`), and the CA their certificates
    /// are checked against (nil: the system's roots).
    private let usesTLS: @Sendable (HostPort) -> Bool
    private let caFile: String?

    public init(
        resolver: any TargetResolver = DirectTargetResolver(), transportAttempts: Int = 3, idleLimit: Duration = .seconds(300),
        check: @escaping TargetCheck = { _, _ in .allowed(addresses: []) },
        usesTLS: @escaping @Sendable (HostPort) -> Bool = { _ in false }, caFile: String? = nil,
        shutdownLimit: Duration = .seconds(2), logger: Logger = Logger(label: "swiftdtm.branch.grpc")
    ) {
        (started, startedContinuation) = AsyncStream.makeStream()
        (stopping, stoppingContinuation) = AsyncStream.makeStream()
        self.shutdownLimit = shutdownLimit
        self.check = check
        self.usesTLS = usesTLS
        self.caFile = caFile
        self.resolver = resolver
        self.transportAttempts = max(transportAttempts, 1)
        self.idleLimit = idleLimit
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: min(self.idleLimit, .seconds(30)))
                        self.closeIdleClients()
                    }
                }
                // Ends once shutdown() finished the stream and every client's connections closed.
                group.addTask {
                    await withDiscardingTaskGroup { connections in
                        for await client in self.started {
                            connections.addTask { try? await client.runConnections() }
                        }
                    }
                }
                // A client whose connection waits out a reconnect backoff (a server that is down,
                // a name that does not resolve) would hold shutdown up to grpc-swift-nio-transport
                // 2.9's longest backoff, 120 s, with no call to finish: past `shutdownLimit` the
                // connections are cancelled.
                group.addTask {
                    for await _ in self.stopping {}
                    try? await Task.sleep(for: self.shutdownLimit)
                }
                // The sweeper never ends first: this is the connections closing, or the limit.
                _ = await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Closes every connection and refuses new calls.
    public func shutdown() {
        stoppingContinuation.finish()
        startedContinuation.finish()
        for entry in clients.withLock({ Array($0.values) }) { entry.client.beginGracefulShutdown() }
    }

    public func invoke(_ call: BranchCall) async -> BranchResult {
        let url: GrpcBranchURL
        do {
            url = try GrpcBranchURL(parsing: call.url)
        } catch {
            return BranchResult(.error, "\(error)")
        }
        let metadata = call.dtmMetadata.metadata(headers: call.headers)
        var options = CallOptions.defaults
        options.timeout = call.timeout
        // A call made while its connection is still being set up waits for it (up to the
        // deadline) instead of failing at once with "Channel isn't ready".
        options.waitForReady = true
        let payload = [UInt8](call.payload)
        var lastFailure = BranchResult(.error, "no attempt made")
        for attempt in 1...transportAttempts {
            let address: HostPort
            do {
                address = try await resolver.address(for: url.target)
            } catch {
                return BranchResult(.error, "\(error)")
            }
            let pinned: [String]
            switch await check(address.host, address.port) {
            case let .refused(reason):
                let target = address.description == url.target ? url.target : "\(url.target) resolved to \(address), which"
                return BranchResult(.error, "\(target) \(reason)")
            case let .allowed(addresses):
                pinned = addresses
            }
            var entry: Entry?
            do {
                let pooled = try client(for: address, dialing: pinned)
                entry = pooled
                try await pooled.client.callRaw(url, payload: payload, metadata: metadata, options: options)
                return BranchResult(.success)
            } catch let error as RPCError {
                let result = DtmResult(grpcCode: error.code)
                if result != .error { return BranchResult(result, error.message) }
                switch error.code {
                case .unavailable:
                    await resolver.reportFailure(address, of: url.target)
                    lastFailure = BranchResult(.error, "\(error.code) (\(address)): \(error.message)")
                    guard Self.isTransportFailure(error) else { return lastFailure }
                    if let entry { drop(entry) }
                    logger.notice("transport failure, trying again on a fresh connection", metadata: [
                        "address": "\(address)", "attempt": "\(attempt)", "error": "\(error.message)"])
                case .deadlineExceeded:
                    // The connection may be the reason (still connecting, or backing off after a
                    // failure): the next call, a due retry, starts from a fresh one.
                    if let entry { drop(entry) }
                    return BranchResult(.error, "\(error.code): \(error.message)")
                default: return BranchResult(.error, "\(error.code): \(error.message)")
                }
            } catch {
                return BranchResult(.error, "\(error)")
            }
        }
        return lastFailure
    }

    /// Whether `error` is the transport's own (grpc-swift-nio-transport's messages for a stream
    /// or connection that closed or never became ready) rather than a status the branch sent.
    static func isTransportFailure(_ error: RPCError) -> Bool {
        error.code == .unavailable && transportFailureMessages.contains { error.message.hasPrefix($0) }
    }

    /// The UNAVAILABLE messages grpc-swift-nio-transport 2.x makes up itself.
    static let transportFailureMessages = [
        "Stream unexpectedly closed", "subchannel isn't ready", "subchannel is unavailable",
        "Channel isn't ready", "Channel is in a transient failure state", "The TCP connection was dropped unexpectedly",
        "connection closed", "Could not establish a connection", "channel is closed", "The channel was closed",
        "Subchannel shutdown", "RPC stream was closed before",
    ]

    /// The client for `address`; over plaintext, one whose connections go to the `dialing`
    /// addresses when given (a name's checked addresses), kept apart from the name's own.
    private func client(for address: HostPort, dialing: [String] = []) throws -> Entry {
        try clients.withLock { clients in
            let key = dialing.isEmpty ? address.description : "\(address) at \(dialing.joined(separator: ","))"
            if var existing = clients[key] {
                existing.lastUsed = .now
                clients[key] = existing
                return existing
            }
            // Over TLS the name is dialled, whatever was checked: the certificate must match it.
            let tls = usesTLS(address)
            let security: HTTP2ClientTransport.Posix.TransportSecurity = tls ? Self.tls(caFile: caFile) : .plaintext
            let transport = try Self.transport(to: address, dialing: tls ? [] : dialing, security: security)
            let entry = Entry(key: key, client: GRPCClient(transport: transport), lastUsed: .now)
            clients[key] = entry
            startedContinuation.yield(entry.client)
            logger.debug("opened gRPC channel to \(key)")
            return entry
        }
    }

    /// A plaintext HTTP/2 transport to `address` whose connections answer the server's PINGs
    /// themselves and drop the resets that end complete responses (see `ServerControlFrameFilter`:
    /// grpc-go sends both at a rate that would otherwise close them), and whose streams send
    /// non-ASCII header values byte for byte (see `LiteralNonASCIIHeaders`).
    /// With `dialing` (addresses as text), its connections go to those addresses — the IPv4 ones
    /// when there are any, else the IPv6 ones, tried in order — instead of looking the name up.
    public static func transport(
        to address: HostPort, dialing: [String] = [], security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext
    ) throws -> HTTP2ClientTransport.Posix {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
            channel.eventLoop.makeCompletedFuture {
                // The filter reads HTTP/2 frames as bytes: behind the TLS handler when there is one.
                let operations = channel.pipeline.syncOperations
                if let tls = try? operations.handler(type: NIOSSLClientHandler.self) {
                    try operations.addHandler(ServerControlFrameFilter(), position: .after(tls))
                } else {
                    try operations.addHandler(ServerControlFrameFilter(), position: .first)
                }
            }
        }
        config.channelDebuggingCallbacks.onCreateHTTP2Stream = { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(LiteralNonASCIIHeaders(), position: .first)
            }
        }
        let v6 = dialing.filter { $0.contains(":") }, v4 = dialing.filter { !$0.contains(":") }
        let target: any ResolvableTarget =
            !v4.isEmpty ? .ipv4(pairs: v4.map { ($0, address.port) })
            : !v6.isEmpty ? .ipv6(pairs: v6.map { ($0, address.port) }) : address.dialTarget
        return try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config)
    }

    /// TLS to a branch server: its certificate checked against `caFile` (PEM) or the system's roots.
    static func tls(caFile: String?) -> HTTP2ClientTransport.Posix.TransportSecurity {
        .tls { config in
            if let caFile { config.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
        }
    }

    /// Stops using `entry` (if it is still the cached one); calls in flight on it finish.
    private func drop(_ entry: Entry) {
        let dropped = clients.withLock { clients -> Bool in
            guard clients[entry.key]?.client === entry.client else { return false }
            clients[entry.key] = nil
            return true
        }
        if dropped { entry.client.beginGracefulShutdown() }
    }

    /// Closes the clients no call has used for `idleLimit`.
    private func closeIdleClients() {
        let now = ContinuousClock.now
        let idle = clients.withLock { clients -> [Entry] in
            let idle = clients.filter { now - $0.value.lastUsed > idleLimit }
            for key in idle.keys { clients[key] = nil }
            return Array(idle.values)
        }
        for entry in idle { entry.client.beginGracefulShutdown() }
        if !idle.isEmpty { logger.debug("closed \(idle.count) idle gRPC channel(s)") }
    }

    /// How many addresses have a cached client (for tests).
    var cachedClientCount: Int { clients.withLock { $0.count } }
}
