import Foundation
import Projections

/// One call of a branch operation, with everything the transport needs.
public struct BranchCall: Sendable {
    public var gid: String
    public var transType: String
    public var branchID: String
    public var op: String
    /// The branch URL as stored: `host:port/pkg.Svc/Method` for gRPC.
    public var url: String
    /// The request body, sent unchanged.
    public var payload: Data
    /// BranchHeaders of the transaction, sent as metadata.
    public var headers: [String: String]
    /// The call's deadline.
    public var timeout: Duration
}

/// What a branch answered, in dtm's terms, with the error text when it was not a success.
public struct BranchResult: Sendable, Equatable {
    public var outcome: AttemptOutcome
    public var message: String

    public init(_ outcome: AttemptOutcome, _ message: String = "") {
        self.outcome = outcome
        self.message = message
    }
}

/// Calls branch services. Implementations map their transport's results to dtm's outcomes and
/// never throw: an unreachable service is an `.error` result.
public protocol BranchInvoker: Sendable {
    func invoke(_ call: BranchCall) async -> BranchResult
}

/// A gRPC branch URL split the way dtm splits it: the last two path components are the method.
public struct GrpcBranchURL: Sendable, Equatable {
    /// Where the service is: `host:port`.
    public let target: String
    /// `pkg.Svc` of `/pkg.Svc/Method`.
    public let service: String
    /// `Method` of `/pkg.Svc/Method`.
    public let method: String

    /// Parses `host:port/pkg.Svc/Method`. Schemes (`etcd://`, `discov://`, `k8s://`) are refused
    /// with a message until their resolvers exist; `http(s)://` URLs are HTTP branches.
    public init(parsing url: String) throws {
        if let schemeEnd = url.range(of: "://") {
            let scheme = url[..<schemeEnd.lowerBound]
            throw CoordinatorError.invalidArgument("branch URL '\(url)': the '\(scheme)://' scheme is not supported by this server yet; use host:port/pkg.Service/Method")
        }
        let parts = url.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3 else {
            throw CoordinatorError.invalidArgument("branch URL '\(url)' has no method path: expected host:port/pkg.Service/Method")
        }
        let target = parts.dropLast(2).joined(separator: "/")
        let service = String(parts[parts.count - 2])
        let method = String(parts[parts.count - 1])
        guard !target.isEmpty, !service.isEmpty, !method.isEmpty else {
            throw CoordinatorError.invalidArgument("branch URL '\(url)' has no method path: expected host:port/pkg.Service/Method")
        }
        guard let colon = target.lastIndex(of: ":"), Int(target[target.index(after: colon)...]) != nil, colon != target.startIndex else {
            throw CoordinatorError.invalidArgument("branch URL '\(url)': target '\(target)' is not host:port")
        }
        self.target = target
        self.service = service
        self.method = method
    }

    /// The host part of the target.
    public var host: String {
        let colon = target.lastIndex(of: ":") ?? target.endIndex
        let host = target[..<colon]
        return host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : String(host)
    }

    /// The port part of the target.
    public var port: Int {
        target.lastIndex(of: ":").flatMap { Int(target[target.index(after: $0)...]) } ?? 0
    }
}
