public import DTMWire
import EventLog
import Projections

extension RequestError {
    /// `error` as a refusal: itself when it already is one, a storage failure described so an
    /// operator can act on it, else an internal failure with its text.
    public init(storage error: any Error) {
        switch error {
        case let error as RequestError:
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
            self = RequestError(error)
        }
    }
}
