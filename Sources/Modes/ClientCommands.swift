public import DTMWire
public import Projections

/// A client's request to change one transaction, already validated (numbers in range, URLs
/// parsed, branches built by the mode).
public enum ClientCommand: Sendable {
    /// dtm's Prepare: create the transaction as prepared; repeating it while prepared changes nothing.
    case prepare(TransactionCreated)
    /// dtm's Submit: submit a prepared transaction, or create a submitted one.
    case submit(TransactionCreated)
    /// dtm's Abort, with the client's rollback reason.
    case abort(reason: String)
    /// dtm's RegisterBranch: the branches of a registration of `transType`, each with its status.
    case registerBranches([BranchRegistered], transType: String)
    /// dtm's forceStop: fail an unfinished transaction at once.
    case forceStop
    /// dtm's resetNextCronTime: the transaction is due now (a finished one only shows the time).
    case resetNextCronTime
}

/// What each client command means for a transaction's state, in one place and pure: the events
/// to record, or the refusal. The mode decides what is specific to it (abort).
public enum ClientCommands {
    /// The events `command`, received at `now` (µs), records on transaction `gid`, whose state is
    /// `existing` (nil: unknown). No events: the command is a repeat and changes nothing. Status
    /// changes carry `now` as their decision time.
    public static func events(
        for command: ClientCommand, gid: String, existing: TransactionState?, now: Int64
    ) throws -> [TransactionEvent] {
        try decide(command, gid: gid, existing: existing, now: now).map { event in
            guard case var .statusChanged(change) = event.kind else { return event }
            change.decidedAtUs = now
            return .statusChanged(change)
        }
    }

    /// Whether some client command explains `change`, recorded as the client's on `before`:
    /// the audit's check of client-made status changes.
    public static func explains(_ change: StatusChanged, before: TransactionState) -> Bool {
        // A workflow's Submit carries the status and reason it records.
        let submitted = TransactionCreated.with {
            $0.transType = before.transType
            $0.reqExtra = ["status": change.to.dtmName, "rollback_reason": change.reason]
        }
        let candidates: [ClientCommand] = [.submit(submitted), .abort(reason: change.reason), .forceStop]
        return candidates.contains { command in
            let events = (try? decide(command, gid: before.gid, existing: before, now: change.decidedAtUs)) ?? []
            return events.contains { event in
                guard case let .statusChanged(made) = event.kind else { return false }
                return made.from == change.from && made.to == change.to && made.reason == change.reason
            }
        }
    }

    private static func decide(_ command: ClientCommand, gid: String, existing: TransactionState?, now: Int64) throws -> [TransactionEvent] {
        switch command {
        case let .prepare(created):
            return try mode(of: created.transType, existing).prepare(created, onto: existing)
        case let .submit(created):
            return try mode(of: created.transType, existing).submit(created, onto: existing, now: now)
        case let .abort(reason):
            guard let existing else { throw unknownTransaction(gid) }
            guard let mode = TransactionModes.mode(existing.transType) else { throw abortRefused(existing) }
            return try mode.abort(existing, reason: reason)
        case let .registerBranches(specs, transType):
            guard let existing, existing.status == .prepared else {
                throw RequestError.failure("no trans with gid: \(gid) status: \(TransactionStatus.prepared.dtmName) found")
            }
            guard existing.transType == transType, let mode = TransactionModes.mode(transType) else {
                throw RequestError.failure("transaction '\(gid)' is \(existing.transType), cannot register a \(transType) branch")
            }
            return try mode.register(specs, on: existing)
        case .forceStop:
            guard let existing else { throw unknownTransaction(gid) }
            guard !existing.status.isTerminal else {
                throw RequestError.failure("current status '\(existing.status.dtmName)', cannot force stop")
            }
            return [.statusChanged(.with {
                $0.from = existing.status; $0.to = .failed; $0.reason = "force stopped"; $0.byClient = true
            })]
        case .resetNextCronTime:
            // Any status, as in dtm: a finished transaction just shows the new time.
            guard let existing else { throw unknownTransaction(gid) }
            return [.retryScheduled(.with { $0.dueUs = now; $0.retryInterval = existing.retryInterval })]
        }
    }
}

/// The mode that rules a command on `existing` (its own mode once it exists), else the request's.
private func mode(of transType: String, _ existing: TransactionState?) throws -> any TransactionMode.Type {
    try TransactionModes.requested(existing?.transType ?? transType)
}

/// dtm's refusal of a request naming a gid it does not know (HTTP 500, gRPC Unknown).
public func unknownTransaction(_ gid: String) -> RequestError {
    .refused("no TransGlobal with gid: \(gid) found")
}
