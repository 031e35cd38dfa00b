/// dtm's names of the protocols a transaction arrives over (its stored `protocol`, also the `type`
/// label of dtm's metrics). A `json-rpc` transaction's HTTP branches are called over JSON-RPC.
public enum DtmProtocol {
    public static let grpc = "grpc"
    public static let http = "http"
    public static let jsonRPC = "json-rpc"
}

/// dtm's JSON-RPC error codes, the server's (`/api/json-rpc`) and its branches'.
public enum JsonRpcErrorCode: Int, Sendable {
    case parseError = -32700
    case invalidRequest = -32600
    case methodNotFound = -32601
    case internalError = -32603
    /// dtm's FAILURE.
    case failure = -32901
    /// dtm's ONGOING (sent by branches, never by the server).
    case ongoing = -32902
}
