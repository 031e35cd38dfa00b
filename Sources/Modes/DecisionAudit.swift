public import Projections

/// Re-derives a transaction's decisions from its events: every status change the coordinator
/// made and every set of branch calls it started must be what `decide` gives for the state
/// before it, at the time it was decided (the event's decision time; in older logs, the time it
/// was recorded); every status change a client made must be one a client command makes. A difference means the log was not written by these
/// rules (a bug, or history changed by hand).
public enum DecisionAudit {
    /// A recorded decision that `decide` does not reproduce.
    public struct Mismatch: Sendable, Equatable, CustomStringConvertible {
        public let gid: String
        public let seq: UInt64
        public let recorded: String
        public let derived: String

        public var description: String {
            "transaction \(gid), record \(seq): recorded \(recorded), but the rules derive \(derived)"
        }
    }

    /// Checks one transaction's events (in log order).
    public static func check(_ events: [RecordedEvent]) -> [Mismatch] {
        var mismatches = [Mismatch]()
        var state: TransactionState?
        var index = 0
        while index < events.count {
            let event = events[index]
            guard let before = state, let mode = TransactionModes.mode(before.transType) else {
                state = apply(event, to: state)
                index += 1
                continue
            }
            switch event.event.kind {
            case let .statusChanged(change) where change.byClient:
                if !ClientCommands.explains(change, before: before) {
                    mismatches.append(Mismatch(
                        gid: event.gid, seq: event.seq,
                        recorded: "client's status \(change.from.dtmName) → \(change.to.dtmName) (\(change.reason))",
                        derived: "no client command makes it from status \(before.status.dtmName)"))
                }
            case let .statusChanged(change):
                let derived = mode.decide(before, now: decisionTime(change.decidedAtUs, recorded: event))
                if derived != .changeStatus(change.to, reason: change.reason) {
                    mismatches.append(Mismatch(
                        gid: event.gid, seq: event.seq,
                        recorded: "status \(change.to.dtmName) (\(change.reason))", derived: describe(derived)))
                }
            case .attemptStarted:
                // Branches called together are one decision: check the whole group against the
                // state before the first of them.
                var group = [BranchRef]()
                var decidedAt: Int64 = 0
                var end = index
                while end < events.count, case let .attemptStarted(started) = events[end].event.kind {
                    group.append(BranchRef(started.branchID, started.op))
                    if decidedAt == 0 { decidedAt = started.decidedAtUs }
                    end += 1
                }
                let derived = mode.decide(before, now: decisionTime(decidedAt, recorded: events[index]))
                if case let .call(refs) = derived, Set(group).isSubset(of: Set(refs)) {} else {
                    mismatches.append(Mismatch(
                        gid: event.gid, seq: event.seq,
                        recorded: "call \(group.map(\.description).joined(separator: ", "))", derived: describe(derived)))
                }
                for started in events[index..<end] { state = apply(started, to: state) }
                index = end
                continue
            default:
                break
            }
            state = apply(event, to: state)
            index += 1
        }
        return mismatches
    }

    /// When a decision was made: the time it carries, or (logs written before events carried it)
    /// the time its record was appended.
    static func decisionTime(_ decidedAt: Int64, recorded event: RecordedEvent) -> Int64 {
        decidedAt > 0 ? decidedAt : event.time
    }

    static func describe(_ step: Step) -> String {
        switch step {
        case let .call(refs): return "call \(refs.map(\.description).joined(separator: ", "))"
        case let .changeStatus(status, reason): return "status \(status.dtmName) (\(reason))"
        case let .wait(due): return "wait until \(due)"
        case .done: return "done"
        }
    }
}
