/// Why the coordinator refused a request; the gateways map each case to dtm's status codes.
public enum CoordinatorError: Error, Equatable, CustomStringConvertible {
    /// dtm's FAILURE (gRPC Aborted, HTTP 409): the request conflicts with the transaction's state,
    /// or (WaitResult) the transaction did not succeed.
    case failure(String)
    /// dtm's ONGOING (gRPC FailedPrecondition, HTTP 425).
    case ongoing(String)
    /// Malformed input (gRPC InvalidArgument, HTTP 400); the message names the field.
    case invalidArgument(String)
    /// A dtm feature this server does not offer yet (gRPC Unimplemented).
    case unimplemented(String)

    public var description: String {
        switch self {
        case let .failure(message), let .ongoing(message), let .invalidArgument(message), let .unimplemented(message):
            return message
        }
    }
}
