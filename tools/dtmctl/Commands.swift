import ArgumentParser
import ByteIdentity
import EventLog
import LMDBStore
import Foundation
import PostgresStore
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
func eventJSON(_ record: AuditRecord, hashes: Bool = false) throws -> [String: Any] {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    let event = record.event
    let body = try JSONSerialization.jsonObject(with: Data(try event.event.jsonString(options: options).utf8))
    var object: [String: Any] = [
        "seq": record.seq, "time": timeText(event.time), "gid": event.gid, "type": record.type, "event": body,
    ]
    if hashes {
        object["hash"] = record.hash
        object["previous_hash"] = record.previousHash
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
            let records = try await data.withStore { try await $0.records(ofStream: gid) }
            guard !records.isEmpty else { throw CheckFailed(description: "no transaction '\(gid)' in the log") }
            if json {
                try printJSON(try records.map { try eventJSON($0) })
                return
            }
            printTable(["SEQ", "TIME", "EVENT", "DETAIL"], records.map { record in
                [String(record.seq), timeText(record.event.time), record.type, summary(record.event.event)]
            })
            var state: TransactionState?
            for record in records { state = apply(record.event, to: state) }
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
            func show(_ record: AuditRecord) throws {
                let event = record.event
                let line = json
                    ? try jsonLine(try eventJSON(record))
                    : "\(record.seq)  \(timeText(event.time))  \(event.gid)  \(record.type)  \(summary(event.event))"
                // Unbuffered, so a pipe sees each event as soon as it is read (--follow).
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
            let end = to ?? .max
            try await data.withStore { store in
                var last = from > 0 ? from - 1 : 0
                try await store.forEachRecord(from: from, through: end) { record in
                    try show(record)
                    last = record.seq
                    return true
                }
                guard follow, last < end else { return }
                switch store {
                case let .lmdb(log, _, _):
                    for try await record in log.follow(after: last) {
                        if record.seq > end { break }
                        try show(try AuditRecord(record))
                    }
                case let .postgres(postgres):
                    for try await event in postgres.follow(after: last) {
                        if event.seq > end { break }
                        try show(AuditRecord(following: event))
                    }
                }
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
            try await data.withStore { store in
                switch store {
                case let .lmdb(log, view, _): try verify(log, view)
                case let .postgres(postgres): try await verify(postgres)
                }
            }
        }
    }

    /// PostgreSQL: every stream's numbering and hash chain, every state row against the fold of
    /// its events, every decision re-derived.
    private func verify(_ store: PostgresTransactionStore) async throws {
        let progress = Progress("verify streams")
        let total = try await store.lastSeq()
        let result = try await store.verify(
            audit: { DecisionAudit.check($0).map(\.description) },
            progress: { progress.update(done: UInt64($0), total: max(total, UInt64($0))) })
        progress.finish(done: UInt64(result.events))
        guard result.problems.isEmpty else {
            throw CheckFailed(description: "\(result.problems.count) problem(s):\n" + result.problems.prefix(50).joined(separator: "\n"))
        }
        print("ok: \(result.events) events, every stream's chain intact; every state row equals its events' fold (\(result.transactions) transactions, \(result.kvRecords) KV records); \(result.batches) writer batches chained, covering every event once; every decision re-derives")
    }

    /// LMDB: checksums, chain and seq density of the whole log; the view against a fresh fold.
    private func verify(_ log: EventLog, _ view: TransactionView) throws {
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

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop the view and rebuild it from the log (writes; refuses while dtmd holds the log).")

    @OptionGroup var data: DataOptions
    @Flag(help: "Rebuild even though another process holds the writer lock (unsafe while it appends).")
    var force = false

    func run() async throws {
        try await reportingFailures {
            if try data.configuration()?.storeDriver == "postgres" {
                throw ValidationError("the PostgreSQL store has no view to rebuild: each state row is written with its events (dtmctl verify compares them)")
            }
            let path = try data.data
            guard FileManager.default.fileExists(atPath: path + "/data.mdb") else {
                throw CannotOpen(path: path, reason: "no event log there (data.mdb is missing)")
            }
            var configuration = LMDBStoreConfiguration(path: path)
            configuration.ignoreWriterLock = force
            configuration.maintainsView = false
            let store: LMDBTransactionStore
            do {
                store = try await LMDBTransactionStore.open(configuration)
            } catch EventLogError.lockedByAnotherWriter {
                throw CheckFailed(description: "dtmd (or another process) is writing \(path); stop it first, or pass --force")
            } catch let damage as EventLogError {
                throw damage
            } catch {
                throw CannotOpen(path: path, reason: "\(error)")
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
            let (seq, folded) = try await data.withStore { store in
                var seq: UInt64
                if let at { seq = at } else { seq = try await store.lastSeq() }
                if let atTime, let date = parseTime(atTime) {
                    seq = try await store.lastSeq(atOrBefore: Int64(max(date.timeIntervalSince1970, 0) * 1_000_000))
                }
                return (seq, try await store.states(through: seq))
            }
            let states = folded.values
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
            try await data.withStore { store in
                try await store.forEachRecord(from: from) { record in
                    try printJSON(try eventJSON(record, hashes: true))
                    return true
                }
            }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Counts: records, transactions by status, size.")
    static let statuses: [TransactionStatus] = [.prepared, .submitted, .aborting, .succeed, .failed]

    @OptionGroup var data: DataOptions

    func run() async throws {
        try await reportingFailures {
            try await data.withStore { store in
                switch store {
                case let .lmdb(log, view, path):
                    let last = try log.lastRecord()
                    let first = try log.record(1)
                    print("records:        \(last?.seq ?? 0)")
                    print("first / last:   \(timeText(Int64(first?.timestamp ?? 0))) / \(timeText(Int64(last?.timestamp ?? 0)))")
                    print("view checkpoint: \(try view.checkpoint())")
                    print("transactions:   \(try view.count())")
                    for status in Self.statuses {
                        print("  \(status.dtmName.padding(toLength: 10, withPad: " ", startingAt: 0)) \(try view.gids(withStatus: status, limit: .max).count)")
                    }
                    let size = (try? FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int) ?? 0
                    print("data.mdb:       \(size / 1024) KiB (map \(log.environment.mapSize / 1024) KiB)")
                case let .postgres(postgres):
                    let counts = try await postgres.counts()
                    print("events:         \(counts.events) (last seq \(try await postgres.lastSeq()))")
                    print("first / last:   \(timeText(counts.firstUs)) / \(timeText(counts.lastUs))")
                    print("transactions:   \(counts.byStatus.values.reduce(0, +))")
                    for status in Self.statuses {
                        print("  \(status.dtmName.padding(toLength: 10, withPad: " ", startingAt: 0)) \(counts.byStatus[status] ?? 0)")
                    }
                }
            }
        }
    }
}
