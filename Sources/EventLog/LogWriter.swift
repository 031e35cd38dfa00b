import ByteIdentity
import Foundation
import Synchronization

/// The one thread that owns every LMDB write transaction of a log.
///
/// LMDB write transactions must begin and commit on one OS thread and must not wait on anything
/// else, and an fsync'ing commit must not block Swift's small cooperative pool. So producers enqueue
/// their events and suspend; this thread takes everything queued, writes it in one transaction,
/// commits once (group commit), then resumes every producer with its seqs.
final class LogWriter: @unchecked Sendable {
    private enum Job {
        case append([NewEvent], @Sendable (Result<[UInt64], any Error>) -> Void)
        case project(rebuild: Bool, projector: (any LogProjector)?, progress: (@Sendable (LogProgress) -> Void)?, CheckedContinuation<Void, any Error>)
        case stop(CheckedContinuation<Void, any Error>)
    }

    private let environment: LMDBEnvironment
    private let records: LMDBDatabase
    private let streams: LMDBDatabase
    private let streamHeads: LMDBDatabase
    private let reader: LogReader
    private let projector: (any LogProjector)?
    private let maxEventsPerCommit: Int
    private let onCommit: (@Sendable (Int, Duration) -> Void)?
    private let gatherWindow: TimeInterval

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopped = false

    // Owned by the writer thread once it runs.
    private var lastSeq: UInt64
    private var lastHash: RecordHash
    private var lastTimestamp: UInt64
    private var notifier: AppendNotifier?
    /// First seq of recently written streams, to spare a lookup per event.
    private var headCache: [ExactString: UInt64] = [:]
    private static let headCacheLimit = 65536

    init(
        environment: LMDBEnvironment, records: LMDBDatabase, streams: LMDBDatabase, streamHeads: LMDBDatabase,
        reader: LogReader,
        projector: (any LogProjector)?, maxEventsPerCommit: Int, onCommit: (@Sendable (Int, Duration) -> Void)?, gatherWindow: TimeInterval,
        lastSeq: UInt64, lastHash: RecordHash, lastTimestamp: UInt64
    ) {
        self.environment = environment
        self.records = records
        self.streams = streams
        self.streamHeads = streamHeads
        self.reader = reader
        self.projector = projector
        self.maxEventsPerCommit = max(1, maxEventsPerCommit)
        self.onCommit = onCommit
        self.gatherWindow = max(0, gatherWindow)
        self.lastSeq = lastSeq
        self.lastHash = lastHash
        self.lastTimestamp = lastTimestamp
    }

    func start(notifier: AppendNotifier) {
        self.notifier = notifier
        let thread = Thread { [self] in run() }
        thread.name = "swiftdtm.eventlog.writer"
        thread.start()
    }

    /// Queues `events`; `completion` runs on the writer thread once they are durable (or failed).
    /// Appends queued from one task are committed in the order they were queued.
    func append(_ events: [NewEvent], completion: @escaping @Sendable (Result<[UInt64], any Error>) -> Void) {
        enqueue(.append(events, completion)) { completion(.failure(EventLogError.closed)) }
    }

    func catchUpProjection(progress: (@Sendable (LogProgress) -> Void)?) async throws {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.project(rebuild: false, projector: nil, progress: progress, continuation)) { continuation.resume(throwing: EventLogError.closed) }
        }
    }

    func rebuildProjection(projector: (any LogProjector)?, progress: (@Sendable (LogProgress) -> Void)?) async throws {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.project(rebuild: true, projector: projector, progress: progress, continuation)) { continuation.resume(throwing: EventLogError.closed) }
        }
    }

    func stop() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            enqueue(.stop(continuation)) { continuation.resume() }
        }
    }

    private func enqueue(_ job: Job, ifStopped: () -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            ifStopped()
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Takes the next unit of work: every queued append up to the batch limit, or one other job.
    ///
    /// `returning` is how many appenders the previous commit resumed. They usually append again
    /// within microseconds; while fewer appends than that are queued, the writer waits for them up
    /// to `gatherWindow`, so a busy log commits about all its appenders at once rather than two
    /// alternating halves. A lone appender never waits: it is the one queued append.
    private func nextJobs(returning: Int) -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty { condition.wait() }
        if returning > 1, case .append = queue[0], gatherWindow > 0 {
            let deadline = Date(timeIntervalSinceNow: gatherWindow)
            while queue.count < returning, condition.wait(until: deadline) {}
        }
        if case .append = queue[0] {
            var taken = 0
            var events = 0
            for job in queue {
                guard case let .append(batch, _) = job else { break }
                if taken > 0 && events + batch.count > maxEventsPerCommit { break }
                taken += 1
                events += batch.count
            }
            let jobs = Array(queue.prefix(taken))
            queue.removeFirst(taken)
            return jobs
        }
        let job = queue.removeFirst()
        if case .stop = job { stopped = true }
        return [job]
    }

    private func run() {
        var returning = 0
        while true {
            let jobs = nextJobs(returning: returning)
            returning = 0
            switch jobs.first {
            case .append?:
                commitAppends(jobs)
                returning = jobs.count
            case let .project(rebuild, projector, progress, continuation)?:
                do {
                    try runProjection(projector ?? self.projector, rebuild: rebuild, progress: progress)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            case let .stop(continuation)?:
                failRemaining()
                continuation.resume()
                return
            case nil:
                continue
            }
        }
    }

    private func failRemaining() {
        condition.lock()
        let rest = queue
        queue.removeAll()
        condition.unlock()
        for job in rest {
            switch job {
            case let .append(_, completion): completion(.failure(EventLogError.closed))
            case let .project(_, _, _, continuation): continuation.resume(throwing: EventLogError.closed)
            case let .stop(continuation): continuation.resume()
            }
        }
    }

    /// Writes every queued append in one transaction and acknowledges them after the commit.
    private func commitAppends(_ jobs: [Job]) {
        let timestamp = max(lastTimestamp, UInt64(Date().timeIntervalSince1970 * 1_000_000))
        var batches = [[NewEvent]]()
        batches.reserveCapacity(jobs.count)
        for case let .append(events, _) in jobs { batches.append(events) }
        let started = ContinuousClock.now
        do {
            let (seq, hash, newHeads) = try writeWithGrowth { txn in
                var seq = lastSeq
                var hash = lastHash
                var newHeads = [ExactString: UInt64]()
                var written = [LogRecord]()
                if projector != nil { written.reserveCapacity(batches.reduce(0) { $0 + $1.count }) }
                for events in batches {
                    for event in events {
                        seq += 1
                        let key = sequenceKey(seq)
                        let encoded = RecordCodec.encode(event, seq: seq, timestamp: timestamp, previousHash: hash)
                        try txn.put(records, key: key, value: encoded.bytes, append: true)
                        let head = try streamHead(event.streamID, seq: seq, newHeads: &newHeads, in: txn)
                        try txn.put(streams, key: streamIndexKey(head: head, seq: seq), value: EmptyCollection<UInt8>())
                        if projector != nil {
                            written.append(LogRecord(
                                seq: seq, timestamp: timestamp, streamID: event.streamID, type: event.type,
                                payload: event.payload, previousHash: hash, hash: encoded.hash))
                        }
                        hash = encoded.hash
                    }
                }
                if let projector { try projector.project(written, prepared: nil, in: txn) }
                return (seq, hash, newHeads)
            }
            if headCache.count + newHeads.count > Self.headCacheLimit { headCache.removeAll(keepingCapacity: true) }
            headCache.merge(newHeads) { $1 }
            onCommit?(Int(clamping: seq - lastSeq), ContinuousClock.now - started)
            var next = lastSeq
            lastSeq = seq
            lastHash = hash
            lastTimestamp = timestamp
            notifier?.published(lastSeq: seq)
            for case let .append(events, completion) in jobs {
                let first = next + 1
                next += UInt64(events.count)
                completion(.success(Array(first...next)))
            }
        } catch {
            for case let .append(_, completion) in jobs { completion(.failure(error)) }
        }
    }

    /// The first seq of the stream, recording `seq` as its first when the stream is new.
    private func streamHead(
        _ streamID: String, seq: UInt64, newHeads: inout [ExactString: UInt64], in txn: borrowing LMDBWriteTransaction
    ) throws -> UInt64 {
        let stream = streamID.exact
        if let head = newHeads[stream] ?? headCache[stream] { return head }
        let key = stream.bytes
        if let head = try txn.withValue(streamHeads, key: key, { $0.flatMap(sequence(fromKey:)) }) {
            newHeads[stream] = head
            return head
        }
        try txn.put(streamHeads, key: key, value: sequenceKey(seq))
        newHeads[stream] = seq
        return seq
    }

    /// Brings the projector up to the end of the log, from its checkpoint or (rebuild) from scratch.
    private func runProjection(_ projector: (any LogProjector)?, rebuild: Bool, progress: (@Sendable (LogProgress) -> Void)?) throws {
        guard let projector else { return }
        let start = try writeWithGrowth { txn in
            if rebuild { try projector.reset(in: txn) }
            return try projector.checkpoint(in: txn)
        }
        guard start < lastSeq else {
            progress?(LogProgress(done: lastSeq, total: lastSeq))
            return
        }
        let previous = start == 0 ? RecordHash.genesis : try reader.chunk(from: start, through: start, limit: 1, previous: nil).first?.hash
        var reached = start
        try reader.forEachChunk(
            from: start + 1, through: lastSeq, chunkSize: 32768, previous: previous,
            prepare: { try projector.prepare($0) }
        ) { chunk, prepared in
            try writeWithGrowth { txn in try projector.project(chunk, prepared: prepared, in: txn) }
            reached = chunk.last?.seq ?? reached
            progress?(LogProgress(done: reached, total: lastSeq))
            return true
        }
        guard reached == lastSeq else {
            throw EventLogError.sequenceGap(after: reached, found: lastSeq)
        }
    }

    /// Runs a write transaction, doubling the map and retrying when it is full.
    private func writeWithGrowth<T>(_ body: (borrowing LMDBWriteTransaction) throws -> T) throws -> T {
        while true {
            do {
                return try environment.withWriteTransaction(body)
            } catch let error as LMDBError where error.isMapFull {
                environment.growMap(to: environment.mapSize * 2)
            }
        }
    }
}

/// Wakes tasks that wait for records beyond a seq (the tail-follow of `EventLog.follow`).
final class AppendNotifier: Sendable {
    private struct State {
        var lastSeq: UInt64
        var nextWaiterID = 0
        var waiters: [Int: (after: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
    }

    private let state: Mutex<State>

    init(lastSeq: UInt64) { state = Mutex(State(lastSeq: lastSeq)) }

    func published(lastSeq: UInt64) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.lastSeq = lastSeq
            let due = state.waiters.filter { $0.value.after < lastSeq }
            for id in due.keys { state.waiters[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once a record beyond `seq` is committed, or when the task is cancelled.
    func wait(untilBeyond seq: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    if state.lastSeq > seq || Task.isCancelled { return true }
                    state.waiters[id] = (seq, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }
}

/// An append that was queued without waiting: wait for it (its durability) later.
public final class AppendTicket: Sendable {
    private enum State {
        case pending([CheckedContinuation<[UInt64], any Error>])
        case done(Result<[UInt64], any Error>)
    }

    private let state = Mutex(State.pending([]))

    init() {}

    func complete(_ result: Result<[UInt64], any Error>) {
        let waiting = state.withLock { state -> [CheckedContinuation<[UInt64], any Error>] in
            guard case let .pending(waiting) = state else { return [] }
            state = .done(result)
            return waiting
        }
        for continuation in waiting { continuation.resume(with: result) }
    }

    /// The seqs of the queued events, once they are durable.
    public func durable() async throws -> [UInt64] {
        try await withCheckedThrowingContinuation { continuation in
            let result = state.withLock { state -> Result<[UInt64], any Error>? in
                switch state {
                case var .pending(waiting):
                    waiting.append(continuation)
                    state = .pending(waiting)
                    return nil
                case let .done(result):
                    return result
                }
            }
            if let result { continuation.resume(with: result) }
        }
    }
}
