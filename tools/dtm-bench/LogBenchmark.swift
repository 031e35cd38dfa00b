import ArgumentParser
import EventLog
import LMDBStore
import Foundation
import Projections

/// `dtm-bench log`: the event log's durable append rates (one appender, many appenders sharing
/// group commits), replay and rebuild rates over a large log, and the time to open it.
struct LogBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Benchmark the LMDB event log: durable appends, group commit, replay, rebuild, open.")

    @Option(help: "Directory for the benchmark's logs (emptied first; a temporary one by default).")
    var directory: String?

    @Option(help: "Seconds each append phase runs.")
    var seconds: Double = 3

    @Option(help: "Concurrent appenders in the group-commit phase.")
    var appenders: Int = 64

    @Option(help: "Events in the replay/rebuild log.")
    var events: Int = 1_000_000

    @Flag(help: "Skip fsync (not a durable measurement; for quick smoke runs).")
    var noSync = false

    @Flag(help: "Skip the append phases.")
    var skipAppends = false

    @Flag(help: "Reuse the replay log left in --directory by an earlier run instead of filling a new one.")
    var reuseLog = false

    func run() async throws {
        let root = directory ?? NSTemporaryDirectory() + "dtm-bench-\(getpid())"
        if reuseLog && directory == nil { throw ValidationError("--reuse-log needs --directory") }
        if !reuseLog { try? FileManager.default.removeItem(atPath: root) }
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: root) } }
        let durability: Durability = noSync ? .noSync : .sync
        print("dtm-bench log: durability=\(noSync ? "nosync" : "fsync"), \(ProcessInfo.processInfo.activeProcessorCount) cores, dir=\(root)")

        if !skipAppends {
            try? FileManager.default.removeItem(atPath: root + "/single")
            try? FileManager.default.removeItem(atPath: root + "/grouped")
            let single = try await appendRate(path: root + "/single", appenders: 1, durability: durability)
            print(String(format: "append, 1 appender:        %10.0f appends/s  (%d appends, %.1f events/commit)", single.rate, single.appends, single.eventsPerCommit))
            let grouped = try await appendRate(path: root + "/grouped", appenders: appenders, durability: durability)
            print(String(format: "append, %3d appenders:     %10.0f appends/s  (%d appends, %.1f events/commit)", appenders, grouped.rate, grouped.appends, grouped.eventsPerCommit))
            print(String(format: "group commit speed-up:     %10.1f x", grouped.rate / single.rate))
        }

        let path = root + "/replay"
        let transactions = events / 6
        if !reuseLog {
            let fill = try await fillTransactions(path: path, transactions: transactions, durability: durability)
            print(String(format: "live append + projection:  %10.0f events/s  (%d events, %d transactions, batches of %d)", fill.rate, fill.events, transactions, Self.fillBatch))
        }
        let fill = (events: transactions * 6, transactions: transactions, lastGid: SampleTransactions.gid(transactions - 1))

        let openStart = ContinuousClock.now
        let store = try await openStore(path: path, durability: durability)
        let (log, view) = (store.log, store.view)
        let probe = try view.transaction(fill.lastGid)
        let openTime = ContinuousClock.now - openStart
        guard probe?.status == .succeed else { throw ValidationError("the last transaction is not in the view after reopening") }
        print("open \(fill.events)-event log, ready to serve: \(milliseconds(openTime)) ms")

        let replayStart = ContinuousClock.now
        var replayed = 0
        try log.forEachRecord { record in
            _ = try RecordedEvent(record)
            replayed += 1
            return true
        }
        let replayRate = Double(replayed) / elapsedSeconds(ContinuousClock.now - replayStart)
        print(String(format: "replay (read, checksum, chain, decode): %10.0f events/s", replayRate))

        let verifyStart = ContinuousClock.now
        let verified = try log.verify()
        let verifyRate = Double(verified) / elapsedSeconds(ContinuousClock.now - verifyStart)
        print(String(format: "verify (checksums, chain, density, index): %10.0f records/s", verifyRate))

        let rebuildStart = ContinuousClock.now
        try await log.rebuildProjection()
        let rebuildRate = Double(fill.events) / elapsedSeconds(ContinuousClock.now - rebuildStart)
        print(String(format: "rebuild view from log:     %10.0f events/s", rebuildRate))
        guard try view.transaction(fill.lastGid)?.status == .succeed, try view.count() == fill.transactions else {
            throw ValidationError("the rebuilt view does not hold every transaction")
        }
        try await log.close()
    }

    private func openStore(path: String, durability: Durability) async throws -> LMDBTransactionStore {
        var configuration = LMDBStoreConfiguration(path: path)
        configuration.durability = durability
        return try await LMDBTransactionStore.open(configuration)
    }

    private struct AppendResult {
        let appends: Int
        let rate: Double
        let eventsPerCommit: Double
    }

    /// Appends one 100-byte event per call from `appenders` tasks for `seconds`.
    private func appendRate(path: String, appenders: Int, durability: Durability) async throws -> AppendResult {
        var configuration = EventLogConfiguration(path: path)
        configuration.durability = durability
        let log = try await EventLog.open(configuration)
        let payload = [UInt8](repeating: 0x61, count: 100)
        let deadline = ContinuousClock.now + .seconds(seconds)
        let start = ContinuousClock.now
        let appends = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<appenders {
                group.addTask {
                    // Like a coordinator's load: each transaction (a random gid, as dtm's are)
                    // gets six events, then the appender moves on to a new one.
                    var count = 0
                    var gid = ""
                    while ContinuousClock.now < deadline {
                        if count % 6 == 0 { gid = UUID().uuidString }
                        _ = try await log.append([NewEvent(streamID: gid, type: "bench", payload: payload)])
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = elapsedSeconds(ContinuousClock.now - start)
        let commits = try commitCount(log)
        try await log.close()
        return AppendResult(appends: appends, rate: Double(appends) / elapsed, eventsPerCommit: Double(appends) / Double(max(commits, 1)))
    }

    /// Records appended in one commit share a timestamp; distinct timestamps count the commits.
    private func commitCount(_ log: EventLog) throws -> Int {
        var commits = 0
        var lastTimestamp: UInt64 = 0
        try log.forEachRecord { record in
            if record.timestamp != lastTimestamp { commits += 1 }
            lastTimestamp = record.timestamp
            return true
        }
        return commits
    }

    private static let fillBatch = 600

    /// Fills a log with saga-shaped transactions (six events each) through the live projection.
    private func fillTransactions(path: String, transactions: Int, durability: Durability) async throws -> (events: Int, rate: Double) {
        let log = try await openStore(path: path, durability: durability).log
        let start = ContinuousClock.now
        var written = 0
        var batch = [NewEvent]()
        batch.reserveCapacity(Self.fillBatch)
        for index in 0..<transactions {
            for event in SampleTransactions.saga(index: index) {
                batch.append(try event.logEntry(gid: SampleTransactions.gid(index)))
            }
            if batch.count >= Self.fillBatch || index == transactions - 1 {
                written += try await log.append(batch).count
                batch.removeAll(keepingCapacity: true)
            }
        }
        let rate = Double(written) / elapsedSeconds(ContinuousClock.now - start)
        try await log.close()
        return (written, rate)
    }
}

/// Saga-shaped event sequences for benchmarks.
enum SampleTransactions {
    static func gid(_ index: Int) -> String { "bench-gid-\(index)" }

    /// created (submitted, two branches with compensations), two successful attempts, succeed.
    static func saga(index: Int) -> [TransactionEvent] {
        let payload = Data(#"{"amount":30,"user_id":\#(index)}"#.utf8)
        var created = TransactionCreated()
        created.transType = "saga"
        created.status = .submitted
        created.protocol = "grpc"
        created.retryInterval = 10
        created.nextDueUs = 1
        created.branches = [("01", "TransOut", "TransOutRevert"), ("02", "TransIn", "TransInRevert")].flatMap { id, action, compensate in
            [("compensate", compensate), ("action", action)].map { op, method in
                BranchSpec.with {
                    $0.branchID = id
                    $0.op = op
                    $0.url = "localhost:58081/busi.Busi/\(method)"
                    $0.payload = payload
                }
            }
        }
        let attempt = { (id: String) in
            TransactionEvent.attemptFinished(.with {
                $0.branchID = id
                $0.op = "action"
                $0.attempt = 1
                $0.outcome = .success
                $0.durationUs = 900
            })
        }
        return [
            .created(created),
            .attemptStarted(.with { $0.branchID = "01"; $0.op = "action"; $0.attempt = 1 }),
            attempt("01"),
            .attemptStarted(.with { $0.branchID = "02"; $0.op = "action"; $0.attempt = 1 }),
            attempt("02"),
            .statusChanged(.with { $0.from = .submitted; $0.to = .succeed }),
        ]
    }
}

func elapsedSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func milliseconds(_ duration: Duration) -> String {
    String(format: "%.1f", elapsedSeconds(duration) * 1000)
}
