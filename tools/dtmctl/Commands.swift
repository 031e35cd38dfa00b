import ArgumentParser
import ByteIdentity
import EventLog
import LMDBStore
import Foundation
import Modes
import Projections
import SwiftProtobuf

/// One line describing an event, for tables and logs.
func summary(_ event: TransactionEvent) -> String {
    switch event.kind {
    case let .created(created):
        return "\(created.transType) created \(created.status.dtmName), \(created.branches.count) branch ops"
            + (created.options.timeoutToFail > 0 ? ", timeout \(created.options.timeoutToFail)s" : "")
    case let .branchRegistered(registered):
        return "branch \(registered.branch.branchID)/\(registered.branch.op) registered: \(registered.branch.url)"
    case let .attemptStarted(started):
        return "call \(started.branchID)/\(started.op) attempt \(started.attempt)"
    case let .attemptFinished(finished):
        let error = finished.error.isEmpty ? "" : ": \(finished.error)"
        return "\(finished.branchID)/\(finished.op) attempt \(finished.attempt) → \(finished.outcome) in \(finished.durationUs / 1000) ms\(error)"
    case let .statusChanged(change):
        let reason = change.reason.isEmpty ? "" : " (\(change.reason))"
        return "status \(change.from.dtmName) → \(change.to.dtmName)\(reason)\(change.byClient ? " by client" : "")"
    case let .retryScheduled(schedule):
        return schedule.dueUs == 0 ? "not scheduled" : "next look at \(timeText(schedule.dueUs)) (interval \(schedule.retryInterval)s)"
    case let .workflowResult(result):
        return "workflow result of \(result.result.count) bytes"
    case let .kvChanged(change):
        return change.deleted ? "\(change.cat) \(change.key) deleted" : "\(change.cat) \(change.key) = \(change.value)"
    case nil:
        return "empty event"
    }
}

/// An event as a JSON object: seq, time, gid, type and the event's fields.
func eventJSON(_ record: LogRecord, _ event: RecordedEvent, hashes: Bool = false) throws -> [String: Any] {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    let body = try JSONSerialization.jsonObject(with: Data(try event.event.jsonString(options: options).utf8))
    var object: [String: Any] = [
        "seq": record.seq, "time": timeText(event.time), "gid": event.gid, "type": record.type, "event": body,
    ]
    if hashes {
        object["hash"] = record.hash.description
        object["previous_hash"] = record.previousHash.description
    }
    return object
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The full timeline of one transaction.")

    @OptionGroup var data: DataOptions
    @Argument(help: "The transaction's gid.") var gid: String
    @Flag(help: "JSON (one array of events) instead of a table.") var json = false

    func run() async throws {
        try await reportingFailures {
            let (log, _) = try await data.openReadOnly()
            let records = try log.records(ofStream: gid)
            guard !records.isEmpty else { throw CheckFailed(description: "no transaction '\(gid)' in the log") }
            let events = try records.map { ($0, try RecordedEvent($0)) }
            if json {
                try printJSON(try events.map { try eventJSON($0.0, $0.1) })
                return
            }
            printTable(["SEQ", "TIME", "EVENT", "DETAIL"], events.map { record, event in
                [String(record.seq), timeText(event.time), record.type, summary(event.event)]
            })
            var state: TransactionState?
            for (_, event) in events { state = apply(event, to: state) }
            if let state {
                print("\nnow: \(state.transType) \(state.status.dtmName)"
                      + (state.rollbackReason.isEmpty ? "" : ", reason: \(state.rollbackReason)"))
            }
        }
    }
}

struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The raw event stream; --follow keeps reading like tail -f.")

    @OptionGroup var data: DataOptions
    @Option(help: "First seq.") var from: UInt64 = 1
    @Option(help: "Last seq.") var to: UInt64?
    @Flag(help: "Keep printing events as they are appended.") var follow = false
    @Flag(help: "One JSON object per line.") var json = false

    func run() async throws {
        try await reportingFailures {
            let (log, _) = try await data.openReadOnly()
            func show(_ record: LogRecord) throws {
                let event = try RecordedEvent(record)
                let line = json
                    ? try jsonLine(try eventJSON(record, event))
                    : "\(record.seq)  \(timeText(event.time))  \(event.gid)  \(record.type)  \(summary(event.event))"
                // Unbuffered, so a pipe sees each event as soon as it is read (--follow).
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
            let end = to ?? .max
            var last = from > 0 ? from - 1 : 0
            try log.forEachRecord(from: from, through: end) { record in
                try show(record)
                last = record.seq
                return true
            }
            guard follow, last < end else { return }
            for try await record in log.follow(after: last) {
                if record.seq > end { break }
                try show(record)
            }
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check checksums, the hash chain and seq density; that the view equals a fresh rebuild; that every decision re-derives.")

    @OptionGroup var data: DataOptions

    func run() async throws {
        try await reportingFailures {
            let (log, view) = try await data.openReadOnly()
            let progress = Progress("verify log")
            let checked = try log.verify { progress.update(done: $0.done, total: $0.total) }
            progress.finish(done: checked)

            // The view reflects the log through its checkpoint: fold the log that far and compare.
            let snapshot = try view.snapshot()
            let replay = Progress("replay")
            let fold = try Replay.fold(of: log, through: snapshot.checkpoint) { replay.update(done: $0, total: snapshot.checkpoint) }
            let derived = fold.transactions
            replay.finish(done: snapshot.checkpoint)
            var problems = [String]()
            for (stream, record) in fold.kv where snapshot.kv[stream] != record {
                problems.append("view of KV record \(stream) differs from the log's fold")
            }
            for stream in snapshot.kv.keys where fold.kv[stream] == nil {
                problems.append("view holds KV record \(stream), which has no events through seq \(snapshot.checkpoint)")
            }
            for (gid, state) in derived where snapshot.states[gid] != state {
                problems.append("view of transaction \(gid) differs from the log's fold (view status \(snapshot.states[gid]?.status.dtmName ?? "missing"), log \(state.status.dtmName))")
            }
            for gid in snapshot.states.keys where derived[gid] == nil {
                problems.append("view holds transaction \(gid), which has no events through seq \(snapshot.checkpoint)")
            }
            problems += snapshot.indexProblems

            var byGid = [ExactString: [RecordedEvent]]()
            try log.forEachRecord(through: snapshot.checkpoint) { record in
                let event = try RecordedEvent(record)
                byGid[event.gid.exact, default: []].append(event)
                return true
            }
            for (_, events) in byGid.sorted(by: { $0.key < $1.key }) {
                problems += DecisionAudit.check(events).map(\.description)
            }
            guard problems.isEmpty else {
                throw CheckFailed(description: "\(problems.count) problem(s):\n" + problems.prefix(50).joined(separator: "\n"))
            }
            print("ok: \(checked) records, chain intact; view equals the log through seq \(snapshot.checkpoint) (\(derived.count) transactions, \(fold.kv.count) KV records); every decision re-derives")
        }
    }
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop the view and rebuild it from the log (writes; refuses while dtmd holds the log).")

    @OptionGroup var data: DataOptions
    @Flag(help: "Rebuild even though another process holds the writer lock (unsafe while it appends).")
    var force = false

    func run() async throws {
        try await reportingFailures {
            guard FileManager.default.fileExists(atPath: data.data + "/data.mdb") else {
                throw CannotOpen(path: data.data, reason: "no event log there (data.mdb is missing)")
            }
            var configuration = LMDBStoreConfiguration(path: data.data)
            configuration.ignoreWriterLock = force
            configuration.maintainsView = false
            let store: LMDBTransactionStore
            do {
                store = try await LMDBTransactionStore.open(configuration)
            } catch EventLogError.lockedByAnotherWriter {
                throw CheckFailed(description: "dtmd (or another process) is writing \(data.data); stop it first, or pass --force")
            } catch let damage as EventLogError {
                throw damage
            } catch {
                throw CannotOpen(path: data.data, reason: "\(error)")
            }
            let (log, view) = (store.log, store.view)
            let progress = Progress("rebuild")
            let lastSeq = try log.lastSeq()
            try await log.rebuildProjection(projector: view) { progress.update(done: $0.done, total: $0.total) }
            progress.finish(done: lastSeq)
            try await log.close()
            print("rebuilt the view of \(try view.count()) transactions from \(lastSeq) records; dtmd resumes every unfinished one on start")
        }
    }
}

struct State: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The transaction table as it was at a point in the log.")

    @OptionGroup var data: DataOptions
    @Option(help: "As of this seq (default: the end of the log).") var at: UInt64?
    @Option(help: "As of this time (ISO 8601, e.g. 2026-11-25T14:07:06Z).") var atTime: String?
    @Option(help: "Only transactions in this status.") var status: String?
    @Flag(help: "One JSON object per transaction.") var json = false

    func validate() throws {
        if at != nil && atTime != nil { throw ValidationError("give --at or --at-time, not both") }
        if let status, TransactionStatus(dtmName: status) == nil {
            throw ValidationError("--status must be one of prepared, submitted, aborting, succeed, failed")
        }
        if let atTime, parseTime(atTime) == nil { throw ValidationError("--at-time '\(atTime)' is not an ISO 8601 time") }
    }

    func run() async throws {
        try await reportingFailures {
            let (log, _) = try await data.openReadOnly()
            var seq = try at ?? log.lastSeq()
            if let atTime, let date = parseTime(atTime) {
                seq = try Replay.lastSeq(of: log, atOrBefore: UInt64(max(date.timeIntervalSince1970, 0) * 1_000_000))
            }
            let states = try Replay.states(of: log, through: seq).values
                .filter { status == nil || $0.status.dtmName == status }
                .sorted { ($0.createTimeUs, $0.gid.exact) < ($1.createTimeUs, $1.gid.exact) }
            if json {
                for state in states {
                    try printJSON([
                        "gid": state.gid, "trans_type": state.transType, "status": state.status.dtmName,
                        "rollback_reason": state.rollbackReason, "create_time": timeText(state.createTimeUs),
                        "branches": state.branches.map { ["branch_id": $0.branchID, "op": $0.op, "status": $0.status.dtmName, "attempts": $0.attempts] },
                    ] as [String: Any])
                }
                return
            }
            print("as of seq \(seq): \(states.count) transaction(s)")
            printTable(["GID", "TYPE", "STATUS", "BRANCHES", "CREATED", "REASON"], states.map { state in
                let done = state.branches.filter { $0.status == .succeed }.count
                return [state.gid, state.transType, state.status.dtmName, "\(done)/\(state.branches.count) succeed",
                        timeText(state.createTimeUs), state.rollbackReason]
            })
        }
    }

    private func parseTime(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601)) ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every event as JSON lines, for external audit pipelines.")

    @OptionGroup var data: DataOptions
    @Option(help: "Output format (jsonl).") var format = "jsonl"
    @Option(help: "First seq.") var from: UInt64 = 1

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("--format must be jsonl") }
    }

    func run() async throws {
        try await reportingFailures {
            let (log, _) = try await data.openReadOnly()
            try log.forEachRecord(from: from) { record in
                try printJSON(try eventJSON(record, try RecordedEvent(record), hashes: true))
                return true
            }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Counts: records, transactions by status, size.")

    @OptionGroup var data: DataOptions

    func run() async throws {
        try await reportingFailures {
            let (log, view) = try await data.openReadOnly()
            let last = try log.lastRecord()
            let first = try log.record(1)
            print("records:        \(last?.seq ?? 0)")
            print("first / last:   \(timeText(Int64(first?.timestamp ?? 0))) / \(timeText(Int64(last?.timestamp ?? 0)))")
            print("view checkpoint: \(try view.checkpoint())")
            print("transactions:   \(try view.count())")
            for status in [TransactionStatus.prepared, .submitted, .aborting, .succeed, .failed] {
                print("  \(status.dtmName.padding(toLength: 10, withPad: " ", startingAt: 0)) \(try view.gids(withStatus: status, limit: .max).count)")
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: data.data + "/data.mdb")[.size] as? Int) ?? 0
            print("data.mdb:       \(size / 1024) KiB (map \(log.environment.mapSize / 1024) KiB)")
        }
    }
}
