public import DTMDiscovery
public import DTMWire
public import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
public import SwiftProtobuf
import Synchronization

/// What dtm answered when it refused a request, or what a branch answers to refuse one.
public enum DtmError: Error, Equatable, CustomStringConvertible {
    /// dtm's FAILURE (gRPC Aborted): the transaction failed or the request conflicts with it.
    /// Thrown from a branch handler, it answers Aborted, which dtm reads as FAILURE.
    case failure(String)
    /// dtm's ONGOING (gRPC FailedPrecondition): try again later.
    case ongoing(String)

    public var description: String {
        switch self {
        case let .failure(message): return "FAILURE: \(message)"
        case let .ongoing(message): return "ONGOING: \(message)"
        }
    }
}

/// Options of a transaction (dtm's TransOptions: WaitResult, TimeoutToFail, RetryInterval,
/// RequestTimeout, RetryLimit, BranchHeaders); 0 / empty = the server's default. They travel as
/// they are, so the SDK's options are dtm's wire message itself.
public typealias TransOptions = Dtmgimp_DtmTransOptions

/// A connection to dtm (or SwiftDTM's dtmd) over gRPC, the equivalent of Go's `dtmgrpc`.
///
/// The target is `host:port` or a go-zero target such as `etcd://localhost:2379/dtmservice`,
/// resolved through etcd: each request goes to one of the dtm servers registered at that moment
/// (round-robin, following the registrations as they change), and one that cannot be reached is
/// skipped and the request sent to another. Use it inside `withDtmClient`, which runs and closes
/// the connections (or get one from `DTMClientTesting` in unit tests).
public struct DtmClient: Sendable {
    let connection: DtmConnection
    let branches: any BranchCaller
    /// The dtm address this client uses, sent to the branches it calls (`dtm-dtm`) so that they
    /// can start sub-branches (nested TCC).
    public let target: String

    /// A client that sends dtm's requests through `dtm` and calls branches itself (a TCC Try)
    /// through `branches`; `target` is dtm's address as branches should use it.
    public init(dtm: any Dtmgimp_Dtm.ClientProtocol, branches: any BranchCaller, target: String = "") {
        self.init(connection: .fixed(dtm), branches: branches, target: target)
    }

    init(connection: DtmConnection, branches: any BranchCaller, target: String, token: String? = nil) {
        self.connection = connection
        self.branches = branches
        self.target = target
        self.token = token
    }

    /// The token sent to dtmd (`Auth.Tokens`), nil for none.
    let token: String?

    /// `authorization: Bearer <token>` when the client has a token.
    var credentials: Metadata {
        guard let token else { return [:] }
        return ["authorization": "Bearer \(token)"]
    }

    /// A new gid from the server.
    public func newGid() async throws -> String {
        if case let .http(api) = connection { return try await api.newGid() }
        return try await grpc { dtm in try await dtm.newGid(request: ClientRequest(message: .init(), metadata: credentials)).gid }
    }

    /// How often a request is sent to another dtm server after one could not be reached.
    static let failovers = 2

    /// Sends a gRPC request through `body` to a dtm server: the fixed one, or one of the target's.
    private func grpc<T: Sendable>(_ body: (any Dtmgimp_Dtm.ClientProtocol) async throws -> T) async throws -> T {
        switch connection {
        case let .fixed(dtm):
            return try await mappingErrors { try await body(dtm) }
        case let .discovered(resolver, connections):
            var failovers = 0
            while true {
                let address = try await resolver.address(for: target)
                let dtm = Dtmgimp_Dtm.Client(wrapping: try connections.client(for: address))
                do {
                    return try await mappingErrors { try await body(dtm) }
                } catch let error as RPCError where error.code == .unavailable && failovers < Self.failovers {
                    // dtm's requests are idempotent by gid: another server may take this one.
                    await resolver.reportFailure(address, of: target)
                    failovers += 1
                }
            }
        case .http:
            preconditionFailure("gRPC requests are sent only on gRPC connections")  // callers switch on .http first
        }
    }

    /// Runs `body`, turning dtm's FAILURE and ONGOING statuses into `DtmError`.
    func mappingErrors<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            switch DtmResult(grpcCode: error.code) {
            case .failure: throw DtmError.failure(error.message)
            case .ongoing: throw DtmError.ongoing(error.message)
            case .success, .error: throw error
            }
        }
    }

    /// What a global transaction asks of dtm.
    enum GlobalOperation {
        case prepare, submit, abort
    }

    func send(_ operation: GlobalOperation, _ request: Dtmgimp_DtmRequest) async throws {
        if case let .http(api) = connection { return try await api.send(operation, request) }
        try await grpc { dtm in
            let message = ClientRequest(message: request, metadata: credentials)
            switch operation {
            case .prepare: _ = try await dtm.prepare(request: message)
            case .submit: _ = try await dtm.submit(request: message)
            case .abort: _ = try await dtm.abort(request: message)
            }
        }
    }

    func prepareWorkflow(_ request: Dtmgimp_DtmRequest) async throws -> Dtmgimp_DtmProgressesReply {
        if case let .http(api) = connection { return try await api.prepareWorkflow(request) }
        return try await grpc { dtm in try await dtm.prepareWorkflow(request: ClientRequest(message: request, metadata: credentials)) }
    }

    /// Subscribes `url` to `topic` (created when missing): msg actions `topic://<topic>` reach it.
    public func subscribe(topic: String, url: String, remark: String = "") async throws {
        if case let .http(api) = connection { return try await api.topic(.subscribe, topic: topic, url: url, remark: remark) }
        let request = Dtmgimp_DtmTopicRequest.with { $0.topic = topic; $0.url = url; $0.remark = remark }
        try await grpc { dtm in _ = try await dtm.subscribe(request: ClientRequest(message: request, metadata: credentials)) }
    }

    /// Removes the subscription of `url` to `topic`.
    public func unsubscribe(topic: String, url: String) async throws {
        if case let .http(api) = connection { return try await api.topic(.unsubscribe, topic: topic, url: url) }
        let request = Dtmgimp_DtmTopicRequest.with { $0.topic = topic; $0.url = url }
        try await grpc { dtm in _ = try await dtm.unsubscribe(request: ClientRequest(message: request, metadata: credentials)) }
    }

    /// Deletes `topic` with its subscriptions.
    public func deleteTopic(_ topic: String) async throws {
        if case let .http(api) = connection { return try await api.topic(.delete, topic: topic) }
        let request = Dtmgimp_DtmTopicRequest.with { $0.topic = topic }
        try await grpc { dtm in _ = try await dtm.deleteTopic(request: ClientRequest(message: request, metadata: credentials)) }
    }

    /// Whether requests go to dtm's HTTP API (a target `http(s)://…/api/dtmsvr`).
    var speaksHTTP: Bool {
        if case .http = connection { true } else { false }
    }

    /// Runs `body` of a global transaction; if it throws, aborts with `request` and rethrows what
    /// `body` threw (an Abort that fails too is not what the caller needs to see: dtm times the
    /// transaction out and rolls it back anyway).
    func abortingOnError(_ request: Dtmgimp_DtmRequest, when abortsOn: (any Error) -> Bool = { _ in true }, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            if abortsOn(error) { try? await send(.abort, request) }
            throw error
        }
    }

    func registerBranch(_ request: Dtmgimp_DtmBranchRequest) async throws {
        if case let .http(api) = connection { return try await api.registerBranch(request) }
        try await grpc { dtm in _ = try await dtm.registerBranch(request: ClientRequest(message: request, metadata: credentials)) }
    }

    /// Calls a branch (`<server>/pkg.Svc/Method`, the server as in any branch URL, or an
    /// `http(s)://` URL) with dtm's metadata, as a TCC Try or an XA prepare is called by the
    /// application; returns the branch's reply.
    package func callBranch(url: String, payload: [UInt8], gid: String, transType: String, branchID: String, op: String) async throws -> [UInt8] {
        let metadata = DtmMetadata(gid: gid, transType: transType, branchID: branchID, op: op, dtm: target)
        if isHTTPBranchURL(url) { return try await HTTPBranchCall(client: .shared).call(url, payload: payload, metadata: metadata) }
        let parsed = try GrpcBranchURL(parsing: url)
        return try await mappingErrors { try await branches.call(parsed, payload: payload, metadata: metadata) }
    }
}

/// Where a `DtmClient` sends dtm's requests.
enum DtmConnection: Sendable {
    /// Always this connection (in-process tests).
    case fixed(any Dtmgimp_Dtm.ClientProtocol)
    /// One of the client's target's current addresses, per request.
    case discovered(any TargetResolver, ConnectionPool)
    /// dtm's HTTP API.
    case http(DtmHTTPAPI)
}

/// One connection per server address, kept and run (`run()`) for the life of a client.
final class ConnectionPool: Sendable {
    private let clients = Mutex<[HostPort: GRPCClient<HTTP2ClientTransport.Posix>]>([:])
    private let started: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
    private let starting: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation
    private let security: HTTP2ClientTransport.Posix.TransportSecurity

    init(security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext) {
        (started, starting) = AsyncStream.makeStream()
        self.security = security
    }

    /// How many servers the pool holds a connection to.
    var count: Int { clients.withLock { $0.count } }

    /// Runs every connection made, until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await client in started {
                group.addTask { try? await client.runConnections() }
            }
            group.cancelAll()
        }
    }

    /// The connection to `address`, made on first use.
    func client(for address: HostPort) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        if let existing = clients.withLock({ $0[address] }) { return existing }
        let made = try GRPCClient(
            transport: HTTP2ClientTransport.Posix(target: address.dialTarget, transportSecurity: security))
        let (chosen, isNew) = clients.withLock { clients in
            if let existing = clients[address] { return (existing, false) }
            clients[address] = made
            return (made, true)
        }
        if isNew { starting.yield(chosen) }
        return chosen
    }
}

/// How the SDK calls a branch itself (a TCC Try): `payload` to the method `url` names, unchanged,
/// with dtm's metadata; returns the reply's bytes. Errors are the branch's gRPC status.
public protocol BranchCaller: Sendable {
    func call(_ url: GrpcBranchURL, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8]
}

/// Calls branches over the network: the URL's server (`host:port`, or a discovery target resolved
/// through etcd), over the client's connection to that address.
struct PooledBranchCaller: BranchCaller {
    let resolver: any TargetResolver
    let connections: ConnectionPool

    func call(_ url: GrpcBranchURL, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8] {
        let address = try await resolver.address(for: url.target)
        var options = CallOptions.defaults
        options.waitForReady = true
        return try await connections.client(for: address).callRaw(url, payload: payload, metadata: metadata.metadata(), options: options)
    }
}

/// Connects to dtm at `target`, runs `body`, and closes; with `token`, every request carries
/// `authorization: Bearer <token>` (dtmd's `Auth.Tokens`); with `tls`, the gRPC connections to
/// dtm use TLS (an `https://` target does over HTTP, trusting the system's roots). `target` is dtm's gRPC address
/// (`host:port`, or `etcd://…/dtmservice` resolved through etcd) or the URL of its HTTP API
/// (`http://host:36789/api/dtmsvr`, as Go's `dtmcli` takes it): then every request, and every
/// branch the application calls itself, speaks HTTP, and payloads must be UTF-8 text (JSON).
/// `etcd` says how `etcd://` targets reach etcd (TLS, client certificate, account), as
/// go-zero's `Etcd` settings do.
public func withDtmClient<T: Sendable>(
    target: String, token: String? = nil, tls: DtmClientTLS? = nil, etcd: EtcdAccess = .plain,
    _ body: (DtmClient) async throws -> T
) async throws -> T {
    let resolver = DiscoveryResolver(etcd: etcd)
    let dtmConnections = ConnectionPool(security: tls.map { $0.transportSecurity } ?? .plaintext)
    // Branches the application calls itself (a TCC Try) keep their own, plaintext connections.
    let connections = tls == nil ? dtmConnections : ConnectionPool()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await resolver.run() }
        group.addTask { await connections.run() }
        if tls != nil { group.addTask { await dtmConnections.run() } }
        defer { group.cancelAll() }
        let connection: DtmConnection
        if isHTTPBranchURL(target) {
            connection = .http(DtmHTTPAPI(server: target.hasSuffix("/") ? String(target.dropLast()) : target, client: .shared, token: token))
        } else {
            _ = try await resolver.address(for: target)  // a target that cannot resolve fails here
            connection = .discovered(resolver, dtmConnections)
        }
        return try await body(DtmClient(
            connection: connection, branches: PooledBranchCaller(resolver: resolver, connections: connections), target: target, token: token))
    }
}

/// Serializes a branch payload: protobuf messages as their bytes, raw bytes as they are.
public protocol BranchPayload: Sendable {
    func payloadBytes() throws -> [UInt8]
}

extension Data: BranchPayload {
    public func payloadBytes() throws -> [UInt8] { [UInt8](self) }
}

extension Array: BranchPayload where Element == UInt8 {
    public func payloadBytes() throws -> [UInt8] { self }
}

/// Wraps a protobuf message as a branch payload.
public struct ProtobufPayload<M: SwiftProtobuf.Message & Sendable>: BranchPayload {
    /// The message sent as the payload.
    public let message: M
    /// Wraps `message`.
    public init(_ message: M) { self.message = message }
    public func payloadBytes() throws -> [UInt8] { try message.serializedBytes() }
}

/// TLS for the SDK's gRPC connections to dtmd (its `TLS.CertFile`): the roots that sign dtmd's
/// certificate, and for mutual TLS the client's own certificate and key (PEM files).
public struct DtmClientTLS: Sendable {
    /// PEM file of the CA that signed dtmd's certificate; nil: the system's roots.
    public var caFile: String?
    /// PEM files of the client certificate and its key, for dtmd's `TLS.ClientCAFile`.
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .tls { config in
            if let caFile { config.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
            if let certificateFile, let keyFile {
                config.certificateChain = [.file(path: certificateFile, format: .pem)]
                config.privateKey = .file(path: keyFile, format: .pem)
            }
        }
    }
}
