import Foundation
public import Logging

/// How an append is made durable.
public enum Durability: Sendable, Equatable {
    /// Every commit is fsync'ed before appends are acknowledged (the default).
    case sync
    /// Commits are not fsync'ed: a crash of the machine may lose acknowledged appends.
    /// Only for tests and benchmarks; the log says so loudly when opened this way.
    case noSync
}

/// Where and how to open an event log.
public struct EventLogConfiguration: Sendable {
    /// The directory holding the LMDB environment.
    public var path: String
    /// How appends are made durable.
    public var durability: Durability = .sync
    /// Open without the ability to append, alongside a writer in another process.
    public var readOnly = false
    /// The starting map size; the map grows as needed.
    public var initialMapSize = 64 << 20
    /// The most events the writer folds into one commit.
    public var maxEventsPerCommit = 8192
    /// How long the writer may wait for the appenders its last commit resumed before committing
    /// again (see `LogWriter`); 0 turns gathering off.
    public var groupCommitGatherWindow: Duration = .microseconds(200)
    /// Open for writing even when another process holds the writer lock (a `flock` on `data.mdb`). Only
    /// for repairs: two processes appending would break the sequence and the chain.
    public var ignoreWriterLock = false
    /// Told of every group commit: how many events it appended and how long its write and
    /// commit (the fsync, when durability is `sync`) took. Called on the writer's thread: keep
    /// it short (recording metrics, say).
    public var onCommit: (@Sendable (_ events: Int, _ duration: Duration) -> Void)?

    public init(path: String) { self.path = path }
}

/// An append-only, hash-chained log of events in LMDB. It knows nothing about what the events mean.
///
/// Appends from any number of tasks are queued to one writer thread, which commits everything
/// queued so far in one write transaction (group commit) and acknowledges each append once that
/// commit is durable. Reads run on the caller's thread in their own read transactions.
public final class EventLog: Sendable {
    /// The LMDB environment, shared with the projections stored beside the log.
    public let environment: LMDBEnvironment
    let records: LMDBDatabase
    let streams: LMDBDatabase
    let streamHeads: LMDBDatabase
    private let writer: LogWriter?
    let notifier: AppendNotifier
    private let writerLock: WriterLock?

    private init(
        environment: LMDBEnvironment, records: LMDBDatabase, streams: LMDBDatabase, streamHeads: LMDBDatabase,
        writer: LogWriter?, lastSeq: UInt64, writerLock: WriterLock? = nil
    ) {
        self.writerLock = writerLock
        self.environment = environment
        self.records = records
        self.streams = streams
        self.streamHeads = streamHeads
        self.writer = writer
        self.notifier = AppendNotifier(lastSeq: lastSeq)
    }

    /// Opens the log in `configuration.path`, creating it when writable. A writable log starts its
    /// writer thread, checks the last record, and brings `projector` up to date with the log.
    public static func open(
        _ configuration: EventLogConfiguration, projector: (any LogProjector)? = nil,
        environment existing: LMDBEnvironment? = nil,
        logger: Logger = Logger(label: "swiftdtm.eventlog")
    ) async throws -> EventLog {
        let environment = try existing ?? openEnvironment(configuration)
        let records = try environment.openDatabase("log.records")
        let streams = try environment.openDatabase("log.stream_index")
        let streamHeads = try environment.openDatabase("log.stream_heads")
        if configuration.readOnly {
            let log = EventLog(
                environment: environment, records: records, streams: streams, streamHeads: streamHeads,
                writer: nil, lastSeq: 0)
            _ = try log.lastRecord()
            return log
        }
        let writerLock = try WriterLock(directory: configuration.path, ignoreHolder: configuration.ignoreWriterLock)
        if configuration.durability == .noSync {
            logger.warning("event log \(configuration.path) opened WITHOUT fsync: acknowledged appends can be lost in a machine crash (tests and benchmarks only)")
        }
        let reader = LogReader(environment: environment, records: records)
        let last = try reader.lastRecord()
        let writer = LogWriter(
            environment: environment, records: records, streams: streams, streamHeads: streamHeads, reader: reader,
            projector: projector, maxEventsPerCommit: configuration.maxEventsPerCommit, onCommit: configuration.onCommit,
            gatherWindow: Double(configuration.groupCommitGatherWindow.components.attoseconds) / 1e18
                + Double(configuration.groupCommitGatherWindow.components.seconds),
            lastSeq: last?.seq ?? 0, lastHash: last?.hash ?? .genesis,
            lastTimestamp: last?.timestamp ?? 0)
        let log = EventLog(
            environment: environment, records: records, streams: streams, streamHeads: streamHeads,
            writer: writer, lastSeq: last?.seq ?? 0, writerLock: writerLock)
        writer.start(notifier: log.notifier)
        if projector != nil {
            try await writer.catchUpProjection(progress: nil)
        }
        return log
    }

    static func openEnvironment(_ configuration: EventLogConfiguration) throws -> LMDBEnvironment {
        var options = LMDBOptions()
        options.readOnly = configuration.readOnly
        options.noSync = configuration.durability == .noSync
        options.initialMapSize = configuration.initialMapSize
        return try LMDBEnvironment(path: configuration.path, options: options)
    }

    /// Appends `events` as consecutive records and returns their seqs once the commit is durable.
    public func append(_ events: [NewEvent]) async throws -> [UInt64] {
        guard let writer else { throw EventLogError.readOnly }
        for event in events { try RecordCodec.validate(event) }
        if events.isEmpty { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            writer.append(events) { continuation.resume(with: $0) }
        }
    }

    /// Queues `events` without waiting for the commit. Appends queued one after another are
    /// committed in that order; `AppendTicket.durable()` waits for this one. For progress that
    /// need not stall its producer (a coordinator records branch outcomes this way and waits only
    /// before it answers a client). `onCommit`, if given, runs on the writer thread once the
    /// commit succeeded or failed, before the ticket completes; it must not block.
    public func enqueue(
        _ events: [NewEvent], onCommit: (@Sendable (Result<[UInt64], any Error>) -> Void)? = nil
    ) throws -> AppendTicket {
        guard let writer else { throw EventLogError.readOnly }
        for event in events { try RecordCodec.validate(event) }
        let ticket = AppendTicket()
        if events.isEmpty {
            onCommit?(.success([]))
            ticket.complete(.success([]))
        } else {
            writer.append(events) { result in
                onCommit?(result)
                ticket.complete(result)
            }
        }
        return ticket
    }

    /// Drops the projection (the one given at open, or `projector`) and rebuilds it from the whole
    /// log (checksums and chain are checked on the way). Appends wait until it is done.
    public func rebuildProjection(
        projector: (any LogProjector)? = nil, progress: (@Sendable (LogProgress) -> Void)? = nil
    ) async throws {
        guard let writer else { throw EventLogError.readOnly }
        try await writer.rebuildProjection(projector: projector, progress: progress)
    }

    /// Stops the writer after the queued appends, flushes the log to disk and lets another
    /// process open it for writing.
    public func close() async throws {
        try await writer?.stop()
        if writer != nil { try environment.sync() }
        writerLock?.release()
    }

    // MARK: Reading

    var reader: LogReader { LogReader(environment: environment, records: records) }

    /// The seq of the last record, 0 for an empty log.
    public func lastSeq() throws -> UInt64 { try reader.lastRecord()?.seq ?? 0 }

    /// The last record, checked; nil for an empty log.
    public func lastRecord() throws -> LogRecord? { try reader.lastRecord() }

    /// The record with `seq`, checked; nil when there is none.
    public func record(_ seq: UInt64) throws -> LogRecord? {
        try reader.chunk(from: seq, through: seq, limit: 1, previous: nil).first
    }

    /// The records from `start` through `end` (inclusive), at most `limit`, each checked, with
    /// density and hash chain verified inside the range.
    public func records(from start: UInt64, through end: UInt64 = .max, limit: Int = .max) throws -> [LogRecord] {
        try reader.chunk(from: max(start, 1), through: end, limit: limit, previous: nil)
    }

    /// Every record from `start` on, in order, read in chunks so no transaction stays open long
    /// (the next chunk is read on another thread meanwhile). The chain is verified across the whole
    /// pass. `body` returns false to stop.
    public func forEachRecord(
        from start: UInt64 = 1, through end: UInt64 = .max, chunkSize: Int = 16384,
        _ body: (LogRecord) throws -> Bool
    ) throws {
        try reader.forEachChunk(from: max(start, 1), through: end, chunkSize: chunkSize, previous: nil) { chunk in
            for record in chunk where try !body(record) { return false }
            return true
        }
    }

    /// The seqs of every record of one stream, in order.
    public func seqs(ofStream streamID: String) throws -> [UInt64] {
        let key = Array(streamID.utf8)
        guard !key.isEmpty, key.count <= LogRecord.maxStreamIDBytes else { return [] }
        return try environment.withReadTransaction { txn in
            guard let head = try txn.withValue(streamHeads, key: key, { $0.flatMap(sequence(fromKey:)) }) else { return [] }
            var seqs = [UInt64]()
            try txn.scan(streams, from: streamIndexKey(head: head, seq: 0)) { foundKey, _ in
                guard foundKey.count == 16,
                      sequence(fromKey: UnsafeRawBufferPointer(rebasing: foundKey[0..<8])) == head,
                      let seq = sequence(fromKey: UnsafeRawBufferPointer(rebasing: foundKey[8..<16]))
                else { return false }
                seqs.append(seq)
                return true
            }
            return seqs
        }
    }

    /// Every record of one stream, in order, each checked.
    public func records(ofStream streamID: String) throws -> [LogRecord] {
        try seqs(ofStream: streamID).compactMap { try record($0) }
    }

    /// Checks the whole log: every checksum and length, dense seqs from 1, the hash chain, and that
    /// the stream index holds one entry per record. Throws the first problem found, naming its seq.
    @discardableResult
    public func verify(progress: ((LogProgress) -> Void)? = nil) throws -> UInt64 {
        // The last seq and the index size from one snapshot: a writer may append meanwhile.
        let (total, indexed) = try environment.withReadTransaction { txn in
            var last: UInt64 = 0
            try txn.scanBackward(records) { key, _ in
                last = sequence(fromKey: key) ?? 0
                return false
            }
            return (last, try txn.count(streams))
        }
        var checked: UInt64 = 0
        try forEachRecord(through: total) { record in
            checked = record.seq
            if record.seq % 65536 == 0 { progress?(LogProgress(done: record.seq, total: total)) }
            return true
        }
        if checked != total {
            throw EventLogError.sequenceGap(after: checked, found: total)
        }
        if UInt64(indexed) != total {
            throw EventLogError.corruptRecord(seq: total, reason: "stream index holds \(indexed) entries for \(total) records")
        }
        progress?(LogProgress(done: total, total: total))
        return total
    }

    /// Records appended after `seq`, first those already in the log, then new ones as they are
    /// committed, until the consumer stops iterating. In a read-only log the writer is another process,
    /// so new records are found by polling.
    public func follow(after seq: UInt64, pollInterval: Duration = .milliseconds(100)) -> AsyncThrowingStream<LogRecord, any Error> {
        let polling = writer == nil
        return AsyncThrowingStream(bufferingPolicy: .bufferingOldest(4096)) { continuation in
            let task = Task {
                var last = seq
                var previous: RecordHash? = nil
                do {
                    while !Task.isCancelled {
                        let chunk = try reader.chunk(from: last + 1, through: .max, limit: 1024, previous: previous)
                        for record in chunk {
                            // Wait for room instead of dropping records when the consumer is slow.
                            while case .dropped = continuation.yield(record) {
                                try await Task.sleep(for: .milliseconds(5))
                            }
                        }
                        if let tail = chunk.last {
                            last = tail.seq
                            previous = tail.hash
                            continue
                        }
                        if polling {
                            try await Task.sleep(for: pollInterval)
                        } else {
                            await notifier.wait(untilBeyond: last)
                        }
                    }
                    continuation.finish()
                } catch is CancellationError {
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// An exclusive `flock` on the log's data file (`data.mdb`), held by the one process that
/// appends (dtmd, or `dtmctl rebuild`). It lives on the file the log is in, so no file a user
/// can delete stands between two writers; the kernel drops it when the process dies. (LMDB's
/// own locks are `fcntl` locks on `lock.mdb`, which this neither touches nor disturbs.)
final class WriterLock: Sendable {
    private let descriptor: Int32

    init(directory: String, ignoreHolder: Bool) throws {
        let dataFile = directory + "/data.mdb"
        descriptor = open(dataFile, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw EventLogError.invalidEvent("cannot open \(dataFile) to lock it: \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0, !ignoreHolder {
            Foundation.close(descriptor)
            throw EventLogError.lockedByAnotherWriter(directory)
        }
    }

    func release() {
        flock(descriptor, LOCK_UN)
    }

    deinit {
        Foundation.close(descriptor)
    }
}

/// Reads and checks records; shared by the public read API and the writer's projection passes.
struct LogReader: Sendable {
    let environment: LMDBEnvironment
    let records: LMDBDatabase

    func lastRecord() throws -> LogRecord? {
        try environment.withReadTransaction { txn in
            var found: LogRecord?
            try txn.scanBackward(records) { key, value in
                guard let seq = sequence(fromKey: key) else {
                    throw EventLogError.corruptRecord(seq: 0, reason: "a key of \(key.count) bytes is in the log")
                }
                found = try RecordCodec.decode(seq: seq, from: value)
                return false
            }
            return found
        }
    }

    /// Up to `limit` consecutive records from `start` through `end`. `previous`, when given, is the
    /// hash the first record must link to; within the chunk each record must link to the one before.
    func chunk(from start: UInt64, through end: UInt64, limit: Int, previous: RecordHash?) throws -> [LogRecord] {
        guard start <= end, limit > 0 else { return [] }
        return try environment.withReadTransaction { txn in
            var result = [LogRecord]()
            var expectedSeq = start
            var expectedHash = previous
            try txn.scan(records, from: sequenceKey(start)) { key, value in
                guard let seq = sequence(fromKey: key) else {
                    throw EventLogError.corruptRecord(seq: expectedSeq, reason: "a key of \(key.count) bytes is in the log")
                }
                if seq > end { return false }
                guard seq == expectedSeq else {
                    throw EventLogError.sequenceGap(after: expectedSeq - 1, found: seq)
                }
                let record = try RecordCodec.decode(seq: seq, from: value)
                if seq == 1, record.previousHash != .genesis {
                    throw EventLogError.brokenChain(seq: 1, expected: .genesis, found: record.previousHash)
                }
                if let expectedHash, record.previousHash != expectedHash {
                    throw EventLogError.brokenChain(seq: seq, expected: expectedHash, found: record.previousHash)
                }
                result.append(record)
                expectedHash = record.hash
                if result.count == limit || seq == .max { return false }
                expectedSeq = seq + 1
                return true
            }
            return result
        }
    }
}
