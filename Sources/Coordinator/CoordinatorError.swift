import EventLog
import Foundation
import Projections

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
    /// The request is larger than the server accepts (gRPC ResourceExhausted, HTTP 413).
    case requestTooLarge(String)
    /// The store has no room left (disk or file size limit): nothing of the request was stored
    /// (gRPC ResourceExhausted, HTTP 507).
    case storageFull(String)
    /// The store failed or is shutting down: nothing of the request is known to be stored
    /// (gRPC Unavailable, HTTP 503).
    case unavailable(String)

    public var description: String {
        switch self {
        case let .failure(message), let .ongoing(message), let .invalidArgument(message), let .unimplemented(message),
             let .requestTooLarge(message), let .storageFull(message), let .unavailable(message):
            return message
        }
    }

    /// `error` in the coordinator's terms: itself when it already is one, else a storage or
    /// internal failure described so an operator can act on it.
    public init(_ error: any Error) {
        switch error {
        case let error as CoordinatorError:
            self = error
        case let error as LMDBError where error.isOutOfSpace:
            self = .storageFull("the event log cannot grow: \(error)")
        case EventLogError.closed:
            self = .unavailable("dtmd is shutting down: the event log is closed")
        case let error as EventLogError:
            self = .unavailable("the event log failed: \(error)")
        case let error as ViewError:
            self = .unavailable("the transaction view failed: \(error)")
        case let error as LMDBError:
            self = .unavailable("the event log failed: \(error)")
        default:
            self = .unavailable("internal error: \(error)")
        }
    }

    /// Whether the error is the server's fault (storage, internal) rather than the request's:
    /// the gateways log these at error level.
    public var isServerFault: Bool {
        switch self {
        case .storageFull, .unavailable: return true
        case .failure, .ongoing, .invalidArgument, .unimplemented, .requestTooLarge: return false
        }
    }
}
