import SwiftProtobuf

/// A transaction event as read back from the log: the event with its seq, time and gid.
public struct RecordedEvent: Sendable, Equatable {
    /// The record's seq in the log.
    public let seq: UInt64
    /// When the event was appended, µs since 1970.
    public let time: Int64
    /// The transaction the event belongs to.
    public let gid: String
    /// What happened.
    public let event: TransactionEvent

    public init(seq: UInt64, time: Int64, gid: String, event: TransactionEvent) {
        self.seq = seq
        self.time = time
        self.gid = gid
        self.event = event
    }
}

extension TransactionEvent {
    /// The name stored as the log record's type: the event's case, e.g. `created`, `status_changed`.
    public var typeName: String {
        switch kind {
        case .created: return "created"
        case .branchRegistered: return "branch_registered"
        case .attemptStarted: return "attempt_started"
        case .attemptFinished: return "attempt_finished"
        case .statusChanged: return "status_changed"
        case .retryScheduled: return "retry_scheduled"
        case .workflowResult: return "workflow_result"
        case .kvChanged: return "kv_changed"
        case nil: return "empty"
        }
    }

    /// A `created` event.
    public static func created(_ body: TransactionCreated) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .created(body) }
    }

    /// A `branch_registered` event.
    public static func branchRegistered(_ body: BranchRegistered) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .branchRegistered(body) }
    }

    /// An `attempt_started` event.
    public static func attemptStarted(_ body: BranchAttemptStarted) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .attemptStarted(body) }
    }

    /// An `attempt_finished` event.
    public static func attemptFinished(_ body: BranchAttemptFinished) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .attemptFinished(body) }
    }

    /// A `status_changed` event.
    public static func statusChanged(_ body: StatusChanged) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .statusChanged(body) }
    }

    /// A `retry_scheduled` event.
    public static func retryScheduled(_ body: NextRetryScheduled) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .retryScheduled(body) }
    }

    /// A `workflow_result` event.
    public static func workflowResult(_ body: WorkflowResultRecorded) -> TransactionEvent {
        TransactionEvent.with { $0.kind = .workflowResult(body) }
    }
}

extension TransactionStatus {
    /// dtm's name for the status (`prepared`, `submitted`, `aborting`, `succeed`, `failed`).
    public var dtmName: String {
        switch self {
        case .prepared: return "prepared"
        case .submitted: return "submitted"
        case .aborting: return "aborting"
        case .succeed: return "succeed"
        case .failed: return "failed"
        case .unspecified, .UNRECOGNIZED: return ""
        }
    }

    /// The status dtm calls `name`; nil for an unknown name.
    public init?(dtmName name: String) {
        guard let match = Self.allCases.first(where: { $0.dtmName == name && !name.isEmpty }) else { return nil }
        self = match
    }

    /// True for `succeed` and `failed`: nothing more happens to the transaction.
    public var isTerminal: Bool { self == .succeed || self == .failed }
}

extension BranchStatus {
    /// dtm's name for the branch status (`prepared`, `succeed`, `failed`).
    public var dtmName: String {
        switch self {
        case .prepared: return "prepared"
        case .succeed: return "succeed"
        case .failed: return "failed"
        case .unspecified, .UNRECOGNIZED: return ""
        }
    }
}
