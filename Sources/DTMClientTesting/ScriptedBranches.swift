public import DTMClient
public import DTMWire
public import GRPCCore
import Synchronization

/// A branch service for tests that answers as told: each method of `service` succeeds unless a
/// plan says otherwise, and every call is recorded with its dtm metadata and payload. Give it to
/// `withTestDtm(branches:)`, or serve it on any gRPC server.
public final class ScriptedBranches: RegistrableRPCService, Sendable {
    /// One call a branch method received.
    public struct Call: Sendable {
        /// The method called.
        public let method: String
        /// dtm's metadata of the call.
        public let context: BranchContext?
        /// The payload received.
        public let payload: [UInt8]
    }

    /// The fully qualified service (`busi.Busi`).
    public let service: String
    private let methods: [String]
    private let plans = Mutex<[String: [DtmResult]]>([:])
    private let received = Mutex<[Call]>([])

    /// A service `service` with `methods`.
    public init(service: String, methods: [String]) {
        self.service = service
        self.methods = methods
    }

    /// The next calls of `method` answer `results` in turn (then SUCCESS again): FAILURE as dtm's
    /// FAILURE, ONGOING as its ONGOING, ERROR as an Unavailable that dtm retries.
    public func plan(_ method: String, _ results: [DtmResult]) {
        plans.withLock { $0[method, default: []] += results }
    }

    /// The calls received so far, in order.
    public var calls: [Call] { received.withLock { $0 } }

    /// The branch URL of `method` for a transaction (its server part is any `host:port`).
    public func url(_ method: String) -> String { "busi:1/\(service)/\(method)" }

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for method in methods {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: service, method: method),
                deserializer: RawBytesCoding(), serializer: RawBytesCoding()
            ) { request, _ in
                let payload = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
                return try await dtmBranch(request.metadata) { context in
                    self.received.withLock { $0.append(Call(method: method, context: context, payload: payload)) }
                    let result = self.plans.withLock { plans in plans[method]?.isEmpty == false ? plans[method]?.removeFirst() : nil }
                    switch result ?? .success {
                    case .success: return StreamingServerResponse(single: ServerResponse(message: []))
                    case .failure: throw DtmError.failure("\(method) refused")
                    case .ongoing: throw DtmError.ongoing("\(method) not done yet")
                    case .error: throw RPCError(code: .unavailable, message: "\(method) is unavailable")
                    }
                }
            }
        }
    }
}
