import Foundation

extension LogReader {
    /// Reads consecutive chunks from `start` through `end` and hands each to `body`, reading the
    /// next chunk on a second thread while `body` works on the current one (a replay then uses both
    /// cores: one checks records, one consumes them). The hash chain is verified across chunks,
    /// starting from `previous` when given. Stops at the end of the log or when `body` returns false.
    func forEachChunk(
        from start: UInt64, through end: UInt64, chunkSize: Int, previous: RecordHash?,
        _ body: ([LogRecord]) throws -> Bool
    ) throws {
        let first = try chunk(from: start, through: end, limit: chunkSize, previous: previous)
        guard let last = first.last else { return }
        guard first.count == chunkSize, last.seq < end else {
            _ = try body(first)
            return
        }
        let prefetcher = ChunkPrefetcher(reader: self, after: last, through: end, chunkSize: chunkSize)
        defer { prefetcher.stop() }
        guard try body(first) else { return }
        while let next = try prefetcher.next() {
            guard try body(next) else { return }
        }
    }
}

/// A thread that reads chunks ahead of their consumer, holding at most two.
private final class ChunkPrefetcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [Result<[LogRecord], Error>] = []
    private var finished = false
    private var stopped = false

    init(reader: LogReader, after last: LogRecord, through end: UInt64, chunkSize: Int) {
        let thread = Thread { [self] in
            var previous = last.hash
            var next = last.seq + 1
            while next <= end {
                let result = Result { try reader.chunk(from: next, through: end, limit: chunkSize, previous: previous) }
                condition.lock()
                while ready.count >= 2 && !stopped { condition.wait() }
                if stopped {
                    condition.unlock()
                    return
                }
                ready.append(result)
                condition.broadcast()
                condition.unlock()
                guard case let .success(records) = result, let tail = records.last, tail.seq < end else { break }
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

    /// The next chunk; nil at the end.
    func next() throws -> [LogRecord]? {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty && !finished { condition.wait() }
        guard !ready.isEmpty else { return nil }
        let result = ready.removeFirst()
        condition.broadcast()
        let records = try result.get()
        return records.isEmpty ? nil : records
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
