import ByteIdentity
import EventLog
@testable import LMDBStore
import Foundation
import Projections
import TransactionFixtures
import Testing

/// A seeded generator so a failing random run can be repeated.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "swiftdtm-test-\(name.filter(\.isLetter))-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The embedded store without fsync.
func openStore(_ path: String) async throws -> LMDBTransactionStore {
    var configuration = LMDBStoreConfiguration(path: path)
    configuration.durability = .noSync
    return try await LMDBTransactionStore.open(configuration)
}

/// A log with the transaction view as its projector, without fsync.
func openLogWithView(_ path: String) async throws -> (EventLog, TransactionView) {
    let store = try await openStore(path)
    return (store.log, store.view)
}

/// Every key and value of the view's databases, in order.
func dump(_ view: TransactionView, _ environment: LMDBEnvironment) throws -> [String: [[UInt8]]] {
    var result = [String: [[UInt8]]]()
    try environment.withReadTransaction { txn in
        for database in view.databases {
            var entries = [[UInt8]]()
            try txn.scan(database) { key, value in
                entries.append(Array(key) + [0xFF] + Array(value))
                return true
            }
            result[database.name] = entries
        }
    }
    return result
}

/// A random but plausible event for transaction `gid` (sometimes one that does not apply).
func randomEvent(_ rng: inout SplitMix64) -> TransactionEvent {
    let branch = ["01", "02", "03"].randomElement(using: &rng)!
    let op = ["action", "compensate", "try", "confirm"].randomElement(using: &rng)!
    let statuses: [TransactionStatus] = [.prepared, .submitted, .aborting, .succeed, .failed]
    switch Int.random(in: 0..<10, using: &rng) {
    case 0:
        return .branchRegistered(.with {
            $0.branch = .with { $0.branchID = branch; $0.op = op; $0.url = "h:1/p.S/\(op)"; $0.payload = Data([UInt8.random(in: 0...255, using: &rng)]) }
            $0.status = .prepared
        })
    case 1, 2:
        return .attemptStarted(.with { $0.branchID = branch; $0.op = op; $0.attempt = Int32.random(in: 1...4, using: &rng) })
    case 3, 4, 5:
        return .attemptFinished(.with {
            $0.branchID = branch
            $0.op = op
            $0.attempt = Int32.random(in: 1...4, using: &rng)
            $0.outcome = [.success, .failure, .ongoing, .error].randomElement(using: &rng)!
            $0.durationUs = Int64.random(in: 1...5000, using: &rng)
            $0.error = Bool.random(using: &rng) ? "" : "boom"
        })
    case 6, 7:
        return .statusChanged(.with {
            $0.to = statuses.randomElement(using: &rng)!
            $0.reason = Bool.random(using: &rng) ? "" : "reason \(Int.random(in: 0...9, using: &rng))"
        })
    case 8:
        return .retryScheduled(.with { $0.dueUs = Int64.random(in: 1...1_000_000, using: &rng); $0.retryInterval = Int64.random(in: 1...60, using: &rng) })
    default:
        return .workflowResult(.with { $0.result = Data("r\(Int.random(in: 0...9, using: &rng))".utf8) })
    }
}

@Suite struct TransactionViewTests {
    @Test func rebuildEqualsTheLiveViewByteForByte() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (log, view) = try await openLogWithView(path)
        var rng = SplitMix64(state: 20261125)
        var expected = [String: TransactionState]()
        var appended = 0
        var nextSeq: UInt64 = 1
        while appended < 4000 {
            var batch = [(String, TransactionEvent)]()
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                let gid = "gid-\(Int.random(in: 0..<300, using: &rng))"
                let event = expected[gid] == nil && Int.random(in: 0..<4, using: &rng) > 0
                    ? sagaCreated(status: [.prepared, .submitted].randomElement(using: &rng)!, due: Int64.random(in: 1...1_000_000, using: &rng))
                    : randomEvent(&rng)
                batch.append((gid, event))
            }
            let seqs = try await log.append(batch.map { try $0.1.logEntry(gid: $0.0) })
            #expect(seqs.first == nextSeq)
            for ((gid, event), seq) in zip(batch, seqs) {
                let time = Int64(try #require(try log.record(seq)).timestamp)
                expected[gid] = apply(RecordedEvent(seq: seq, time: time, gid: gid, event: event), to: expected[gid])
            }
            nextSeq += UInt64(batch.count)
            appended += batch.count
        }
        #expect(try view.checkpoint() == nextSeq - 1)
        for (gid, state) in expected { #expect(try view.transaction(gid) == state) }
        #expect(try view.count() == expected.count)

        let live = try dump(view, log.environment)
        #expect(live["view.transactions"]?.count == expected.count)
        try await log.rebuildProjection()
        let rebuilt = try dump(view, log.environment)
        #expect(rebuilt == live)
        #expect(try view.checkpoint() == nextSeq - 1)

        // The indexes agree with the states they index.
        let open = expected.values.filter { !$0.status.isTerminal && $0.nextDueUs > 0 }
        let due = try view.dueTransactions(atOrBefore: .max, limit: .max)
        #expect(Set(due.map(\.gid)) == Set(open.map(\.gid)))
        #expect(due.map(\.dueUs) == due.map(\.dueUs).sorted())
        for status in [TransactionStatus.prepared, .submitted, .aborting, .succeed, .failed] {
            #expect(Set(try view.gids(withStatus: status, limit: .max)) == Set(expected.values.filter { $0.status == status }.map(\.gid)))
        }
        try await log.close()
    }

    @Test func aViewBehindTheLogCatchesUpWhenOpened() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = EventLogConfiguration(path: path)
        configuration.durability = .noSync
        let bare = try await EventLog.open(configuration)
        _ = try await bare.append([
            try sagaCreated().logEntry(gid: "late"),
            try TransactionEvent.statusChanged(.with { $0.from = .submitted; $0.to = .succeed }).logEntry(gid: "late"),
        ])
        try await bare.close()

        let (log, view) = try await openLogWithView(path)
        #expect(try view.checkpoint() == 2)
        #expect(try view.transaction("late")?.status == .succeed)
        try await log.close()
    }

    @Test func newestTransactionsPageByCreateTime() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (log, view) = try await openLogWithView(path)
        for index in 0..<7 {
            _ = try await log.append([try sagaCreated().logEntry(gid: "page-\(index)")])
        }
        let first = try view.newestTransactions(limit: 3)
        #expect(first.states.map(\.gid) == ["page-6", "page-5", "page-4"])
        let second = try view.newestTransactions(before: first.next, limit: 3)
        #expect(second.states.map(\.gid) == ["page-3", "page-2", "page-1"])
        let third = try view.newestTransactions(before: second.next, limit: 3)
        #expect(third.states.map(\.gid) == ["page-0"])
        #expect(third.next == nil)
        try await log.close()
    }

    @Test func aRecordThatIsNotAnEventIsReportedNotApplied() async throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (log, view) = try await openLogWithView(path)
        await #expect(throws: EventLogError.self) {
            try await log.append([NewEvent(streamID: "x", type: "created", payload: [0xFF, 0xFF, 0xFF])])
        }
        #expect(try log.lastSeq() == 0, "the batch is not committed when its projection fails")
        #expect(try view.transaction("x") == nil)
        try await log.close()
    }
}
