public import DTMWire
public import Foundation

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
    /// HTTP branches: POST even when the payload is empty (the mode's rule; XA always posts).
    public var postsEmptyPayload: Bool
    /// HTTP branches: call over JSON-RPC (the transaction arrived over JSON-RPC).
    public var jsonRPC: Bool

    public init(
        gid: String, transType: String, branchID: String, op: String, url: String, payload: Data,
        headers: [String: String], timeout: Duration, postsEmptyPayload: Bool = false, jsonRPC: Bool = false
    ) {
        self.gid = gid
        self.transType = transType
        self.branchID = branchID
        self.op = op
        self.url = url
        self.payload = payload
        self.headers = headers
        self.timeout = timeout
        self.postsEmptyPayload = postsEmptyPayload
        self.jsonRPC = jsonRPC
    }

    /// The `dtm-*` metadata that tells the branch which call this is.
    public var dtmMetadata: DtmMetadata {
        DtmMetadata(gid: gid, transType: transType, branchID: branchID, op: op)
    }
}

/// What a branch answered, in dtm's terms, with the error text when it was not a success.
public struct BranchResult: Sendable, Equatable {
    public var outcome: DtmResult
    public var message: String

    public init(_ outcome: DtmResult, _ message: String = "") {
        self.outcome = outcome
        self.message = message
    }
}

/// Calls branch services. Implementations map their transport's results to dtm's outcomes and
/// never throw: an unreachable service is an `.error` result.
public protocol BranchInvoker: Sendable {
    func invoke(_ call: BranchCall) async -> BranchResult
}

/// What dtmd's branch-target rules say of a call about to be made to a host and port.
public enum TargetVerdict: Sendable, Equatable {
    /// Make the call. `addresses`, when not empty, are what the rules checked a name's addresses
    /// to be: the call goes to them rather than to a second lookup of the name, which could
    /// answer otherwise.
    case allowed(addresses: [String])
    /// Do not: why.
    case refused(String)
}

/// Asks the branch-target rules about a host and port (dtmd's `CallTargetCheck`).
public typealias TargetCheck = @Sendable (_ host: String, _ port: Int) async -> TargetVerdict
