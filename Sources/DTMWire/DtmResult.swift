public import GRPCCore

/// The result of a dtm call or a branch call in dtm's words, and the one place that says how each
/// travels: over gRPC FAILURE is Aborted and ONGOING is FailedPrecondition; over HTTP FAILURE is
/// 409 (or a body containing `FAILURE`) and ONGOING 425 (or a body containing `ONGOING`).
public enum DtmResult: String, Sendable, Equatable, CaseIterable {
    case success = "SUCCESS"
    case failure = "FAILURE"
    case ongoing = "ONGOING"
    /// Anything else: dtm retries it.
    case error = "ERROR"

    /// What a gRPC status code means to dtm (the way back is `RPCError(RequestError)`).
    public init(grpcCode code: RPCError.Code) {
        switch code {
        case .aborted: self = .failure
        case .failedPrecondition: self = .ongoing
        default: self = .error
        }
    }

    /// The HTTP status that carries the result.
    public var httpStatus: (code: Int, reason: String) {
        switch self {
        case .success: return (200, "OK")
        case .failure: return (409, "Conflict")
        case .ongoing: return (425, "Too Early")
        case .error: return (500, "Internal Server Error")
        }
    }

    /// dtm's reading of an HTTP answer: 425 or a body containing ONGOING is ONGOING; 409 or a body
    /// containing FAILURE is FAILURE; any other status but 200 is an error.
    public init(httpStatus status: Int, body: String) {
        if status == 425 || body.contains(DtmResult.ongoing.rawValue) {
            self = .ongoing
        } else if status == 409 || body.contains(DtmResult.failure.rawValue) {
            self = .failure
        } else {
            self = status == 200 ? .success : .error
        }
    }
}

extension RPCError {
    /// The gRPC status dtm answers a refusal with.
    public init(_ error: RequestError) {
        switch error {
        case .failure: self.init(code: .aborted, message: error.description)
        case let .ongoing(message): self.init(code: .failedPrecondition, message: message)
        case let .invalidArgument(message): self.init(code: .invalidArgument, message: message)
        case let .requestTooLarge(message), let .storageFull(message): self.init(code: .resourceExhausted, message: message)
        case let .unavailable(message): self.init(code: .unavailable, message: message)
        case let .refused(message, isInternal): self.init(code: isInternal ? .internalError : .unknown, message: message)
        }
    }
}
