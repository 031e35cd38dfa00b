@testable import PostgresStore
import DTMWire
import Projections
import Testing

/// The group-commit queue: a batch holds one write per gid, in arrival order; a gid being written
/// waits for its batch; stopping fails what waits.
@Suite struct WriteQueueTests {
    func item(_ gid: String, _ version: UInt64? = nil) -> PostgresWriteQueue.Item {
        .init(gid: gid, work: .append([], expectedVersion: version, claimUntilUs: 0), outcome: PostgresWrite())
    }

    func versions(_ batch: [PostgresWriteQueue.Item]) -> [String] {
        batch.map { item in
            guard case let .append(_, version, _) = item.work else { return "\(item.gid):claim" }
            return "\(item.gid):\(version.map(String.init) ?? "new")"
        }
    }

    @Test func aBatchTakesTheOldestWriteOfEachGidNotBeingWritten() async throws {
        let queue = PostgresWriteQueue()
        queue.enqueue(item("a"))
        queue.enqueue(item("b"))
        queue.enqueue(item("a", 1))
        queue.enqueue(.init(gid: "c", work: .claim(untilUs: 5), outcome: PostgresWrite()))
        queue.enqueue(item("b", 1))
        let first = try #require(await queue.nextBatch())
        #expect(versions(first) == ["a:new", "b:new", "c:claim"])
        // a and b are being written: their next writes wait, even for another writer.
        queue.enqueue(item("d"))
        let second = try #require(await queue.nextBatch())
        #expect(versions(second) == ["d:new"])
        queue.finished(first)
        let third = try #require(await queue.nextBatch())
        #expect(versions(third) == ["a:1", "b:1"])
    }

    @Test func aBatchHoldsAtMostTheLimit() async throws {
        let queue = PostgresWriteQueue()
        for index in 0..<(PostgresWriteQueue.batchLimit + 3) { queue.enqueue(item("g\(index)")) }
        #expect(try #require(await queue.nextBatch()).count == PostgresWriteQueue.batchLimit)
        #expect(try #require(await queue.nextBatch()).count == 3)
    }

    @Test func stoppingFailsWaitingWritesAndEndsTheWriters() async throws {
        let queue = PostgresWriteQueue()
        let waiting = item("a")
        queue.enqueue(waiting)
        queue.stop()
        await #expect(throws: RequestError.self) { try await waiting.outcome.durable() }
        #expect(await queue.nextBatch() == nil)
        let late = item("b")
        queue.enqueue(late)
        await #expect(throws: RequestError.self) { try await late.outcome.durable() }
    }

    @Test func anIdleWriterWakesForNewWorkAndOnCancellation() async throws {
        let queue = PostgresWriteQueue()
        async let taken = queue.nextBatch()
        try await Task.sleep(for: .milliseconds(20))
        queue.enqueue(item("late"))
        #expect(try #require(await taken).map(\.gid) == ["late"])
        let writer = Task { await queue.nextBatch() }
        try await Task.sleep(for: .milliseconds(20))
        writer.cancel()
        #expect(await writer.value == nil)
    }

    @Test func aWriteKeepsTheFirstOutcomeItWasGiven() async throws {
        let write = PostgresWrite()
        #expect(!write.isCompleted)
        write.complete(.failure(RequestError.unavailable("lost")))
        write.complete(.success(true))
        #expect(write.isCompleted)
        await #expect(throws: RequestError.self) { try await write.written() }
    }
}
