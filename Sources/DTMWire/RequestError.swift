/// Why a request to dtm was refused, in dtm's terms. Each case has exactly one gRPC status and one
/// HTTP status (`DtmResult`, `RPCError(_:)`, `httpStatus`), so both gateways and every client
/// read a refusal the same way.
public enum RequestError: Error, Equatable, CustomStringConvertible {
    /// dtm's FAILURE (gRPC Aborted, HTTP 409): the request conflicts with the transaction's state,
    /// or (WaitResult) the transaction did not succeed. dtm's FAILURE errors wrap its ErrFailure,
    /// so the text clients read ends in ` FAILURE`; `description` adds it when the text lacks it.
    case failure(String)
    /// dtm's ONGOING (gRPC FailedPrecondition, HTTP 425).
    case ongoing(String)
    /// Malformed input (gRPC InvalidArgument, HTTP 400); the message names the field.
    case invalidArgument(String)
    /// The request is larger than the server accepts (gRPC ResourceExhausted, HTTP 413).
    case requestTooLarge(String)
    /// The store has no room left (disk or file size limit): nothing of the request was stored
    /// (gRPC ResourceExhausted, HTTP 507).
    case storageFull(String)
    /// The store failed or is shutting down: nothing of the request is known to be stored
    /// (gRPC Unavailable, HTTP 503).
    case unavailable(String)
    /// dtm's plain error, neither FAILURE nor ONGOING: a request dtm refuses with HTTP 500 and
    /// gRPC Unknown (`internal`: Internal), such as an unknown gid or topic. The request's fault,
    /// not the server's.
    case refused(String, internal: Bool = false)

    public var description: String {
        switch self {
        case let .failure(message):
            return message.hasSuffix(DtmResult.failure.rawValue) ? message : "\(message) \(DtmResult.failure.rawValue)"
        case let .ongoing(message), let .invalidArgument(message),
             let .requestTooLarge(message), let .storageFull(message), let .unavailable(message), let .refused(message, _):
            return message
        }
    }

    /// `error` as a refusal: itself when it already is one, else an internal failure with its text.
    public init(_ error: any Error) {
        self = (error as? RequestError) ?? .unavailable("internal error: \(error)")
    }

    /// dtm's result word for the refusal (`FAILURE`, `ONGOING`, else `ERROR`), as metrics label it.
    public var result: DtmResult {
        switch self {
        case .failure: return .failure
        case .ongoing: return .ongoing
        case .invalidArgument, .requestTooLarge, .storageFull, .unavailable, .refused: return .error
        }
    }

    /// Whether the error is the server's fault (storage, internal) rather than the request's:
    /// the gateways log these at error level.
    public var isServerFault: Bool {
        switch self {
        case .storageFull, .unavailable: return true
        case .failure, .ongoing, .invalidArgument, .requestTooLarge, .refused: return false
        }
    }

    /// The HTTP status dtm's HTTP API answers the refusal with.
    public var httpStatus: (code: Int, reason: String) {
        switch self {
        case .failure: return DtmResult.failure.httpStatus
        case .ongoing: return DtmResult.ongoing.httpStatus
        case .invalidArgument: return (400, "Bad Request")
        case .requestTooLarge: return (413, "Content Too Large")
        case .storageFull: return (507, "Insufficient Storage")
        case .unavailable: return (503, "Service Unavailable")
        case .refused: return DtmResult.error.httpStatus
        }
    }
}
