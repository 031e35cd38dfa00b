import DTMDiscovery
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
/// resolved through etcd to one of the registered dtm servers. Use it inside `withDtmClient`,
/// which runs and closes the connection (or get one from `DTMClientTesting` in unit tests).
public struct DtmClient: Sendable {
    let dtm: any Dtmgimp_Dtm.ClientProtocol
    let branches: any BranchCaller
    /// The dtm address this client uses, sent to the branches it calls (`dtm-dtm`) so that they
    /// can start sub-branches (nested TCC).
    public let target: String

    /// A client that sends dtm's requests through `dtm` and calls branches itself (a TCC Try)
    /// through `branches`; `target` is dtm's address as branches should use it.
    public init(dtm: any Dtmgimp_Dtm.ClientProtocol, branches: any BranchCaller, target: String = "") {
        self.dtm = dtm
        self.branches = branches
        self.target = target
    }

    /// A new gid from the server.
    public func newGid() async throws -> String {
        try await call { try await dtm.newGid(request: ClientRequest(message: .init())).gid }
    }

    func call<T: Sendable>(_ body: () async throws -> T) async throws -> T {
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
        try await call {
            let message = ClientRequest(message: request)
            switch operation {
            case .prepare: _ = try await dtm.prepare(request: message)
            case .submit: _ = try await dtm.submit(request: message)
            case .abort: _ = try await dtm.abort(request: message)
            }
        }
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
        try await call { _ = try await dtm.registerBranch(request: ClientRequest(message: request)) }
    }

    /// Calls a branch method (`<server>/pkg.Svc/Method`, the server as in any branch URL) with
    /// dtm's metadata, as a TCC Try or an XA prepare is called by the application; returns the
    /// branch's reply.
    func callBranch(url: String, payload: [UInt8], gid: String, transType: String, branchID: String, op: String) async throws -> [UInt8] {
        let parsed = try GrpcBranchURL(parsing: url)
        let metadata = DtmMetadata(gid: gid, transType: transType, branchID: branchID, op: op, dtm: target)
        return try await call { try await branches.call(parsed, payload: payload, metadata: metadata) }
    }
}

/// How the SDK calls a branch itself (a TCC Try): `payload` to the method `url` names, unchanged,
/// with dtm's metadata; returns the reply's bytes. Errors are the branch's gRPC status.
public protocol BranchCaller: Sendable {
    func call(_ url: GrpcBranchURL, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8]
}

/// Calls branches over the network: the URL's server (`host:port`, or a discovery target resolved
/// through etcd), over one connection per server address kept for the client's life.
final class PooledBranchCaller: BranchCaller {
    let resolver: DiscoveryResolver
    private let clients = Mutex<[String: GRPCClient<HTTP2ClientTransport.Posix>]>([:])
    private let started: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>
    private let starting: AsyncStream<GRPCClient<HTTP2ClientTransport.Posix>>.Continuation

    init(resolver: DiscoveryResolver) {
        self.resolver = resolver
        (started, starting) = AsyncStream.makeStream()
    }

    /// How many servers the caller holds a connection to.
    var connectionCount: Int { clients.withLock { $0.count } }

    /// Runs every connection made, until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await client in started {
                group.addTask { try? await client.runConnections() }
            }
            group.cancelAll()
        }
    }

    func call(_ url: GrpcBranchURL, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8] {
        let address = try await resolver.address(for: url.target)
        let key = "\(address.host):\(address.port)"
        let client: GRPCClient<HTTP2ClientTransport.Posix>
        if let existing = clients.withLock({ $0[key] }) {
            client = existing
        } else {
            let made = try GRPCClient(
                transport: HTTP2ClientTransport.Posix(target: .dns(host: address.host, port: address.port), transportSecurity: .plaintext))
            let (chosen, isNew) = clients.withLock { clients in
                if let existing = clients[key] { return (existing, false) }
                clients[key] = made
                return (made, true)
            }
            if isNew { starting.yield(chosen) }
            client = chosen
        }
        var options = CallOptions.defaults
        options.waitForReady = true
        return try await client.callRaw(url, payload: payload, metadata: metadata.metadata(), options: options)
    }
}

/// Connects to dtm at `target` (`host:port` or `etcd://…/dtmservice`), runs `body`, and closes.
public func withDtmClient<T: Sendable>(target: String, _ body: (DtmClient) async throws -> T) async throws -> T {
    let resolver = DiscoveryResolver()
    let branches = PooledBranchCaller(resolver: resolver)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await resolver.run() }
        group.addTask { await branches.run() }
        defer { group.cancelAll() }
        let address = try await resolver.address(for: target)
        let transport = try HTTP2ClientTransport.Posix(target: .dns(host: address.host, port: address.port), transportSecurity: .plaintext)
        return try await withGRPCClient(transport: transport) { grpc in
            try await body(DtmClient(dtm: Dtmgimp_Dtm.Client(wrapping: grpc), branches: branches, target: target))
        }
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
    public let message: M
    public init(_ message: M) { self.message = message }
    public func payloadBytes() throws -> [UInt8] { try message.serializedBytes() }
}
