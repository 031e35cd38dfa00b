import Foundation

extension LogReader {
    /// Reads consecutive chunks from `start` through `end` and hands each to `body`, reading (and
    /// `prepare`-ing) the next chunk on a second thread while `body` works on the current one, so a
    /// replay uses both cores. The hash chain is verified across chunks, starting from `previous`
    /// when given. Stops at the end of the log or when `body` returns false.
    func forEachChunk<Prepared: Sendable>(
        from start: UInt64, through end: UInt64, chunkSize: Int, previous: RecordHash?,
        prepare: @escaping @Sendable ([LogRecord]) throws -> Prepared,
        _ body: ([LogRecord], Prepared) throws -> Bool
    ) throws {
        let first = try chunk(from: start, through: end, limit: chunkSize, previous: previous)
        guard let last = first.last else { return }
        guard first.count == chunkSize, last.seq < end else {
            _ = try body(first, try prepare(first))
            return
        }
        let prefetcher = ChunkPrefetcher(reader: self, after: last, through: end, chunkSize: chunkSize, prepare: prepare)
        defer { prefetcher.stop() }
        guard try body(first, try prepare(first)) else { return }
        while let (records, prepared) = try prefetcher.next() {
            guard try body(records, prepared) else { return }
        }
    }

    /// `forEachChunk` without a preparation step.
    func forEachChunk(
        from start: UInt64, through end: UInt64, chunkSize: Int, previous: RecordHash?,
        _ body: ([LogRecord]) throws -> Bool
    ) throws {
        try forEachChunk(from: start, through: end, chunkSize: chunkSize, previous: previous, prepare: { _ in () }) { records, _ in
            try body(records)
        }
    }
}

/// A thread that reads and prepares chunks ahead of their consumer, holding at most two.
private final class ChunkPrefetcher<Prepared: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [Result<([LogRecord], Prepared), any Error>] = []
    private var finished = false
    private var stopped = false

    init(
        reader: LogReader, after last: LogRecord, through end: UInt64, chunkSize: Int,
        prepare: @escaping @Sendable ([LogRecord]) throws -> Prepared
    ) {
        let thread = Thread { [self] in
            var previous = last.hash
            var next = last.seq + 1
            while next <= end {
                let result = Result { () throws -> ([LogRecord], Prepared) in
                    let records = try reader.chunk(from: next, through: end, limit: chunkSize, previous: previous)
                    return (records, try prepare(records))
                }
                condition.lock()
                while ready.count >= 2 && !stopped { condition.wait() }
                if stopped {
                    condition.unlock()
                    return
                }
                ready.append(result)
                condition.broadcast()
                condition.unlock()
                guard case let .success((records, _)) = result, let tail = records.last, tail.seq < end else { break }
                previous = tail.hash
                next = tail.seq + 1
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "swiftdtm.eventlog.prefetch"
        thread.start()
    }

    /// The next chunk and what was prepared from it; nil at the end.
    func next() throws -> ([LogRecord], Prepared)? {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty && !finished { condition.wait() }
        guard !ready.isEmpty else { return nil }
        let result = ready.removeFirst()
        condition.broadcast()
        let chunk = try result.get()
        return chunk.0.isEmpty ? nil : chunk
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
