import ByteIdentity
import Foundation
import Synchronization
import DTMWire
import Projections
import TransactionStore

/// Writes to transactions waiting for the store's writers — appends and claims — taken in
/// batches: one batch is one SQL statement and one commit however many transactions it holds
/// (group commit). A gid is in at most one batch at a time, and its writes are taken in the order
/// they came, so an append chained on a pending one is written after it, from what it left.
final class PostgresWriteQueue: Sendable {
    /// What is written to one transaction.
    enum Work: Sendable {
        /// Events decided on version `expectedVersion` (nil: a new transaction); with
        /// `claimUntilUs` > 0, also this node's claim until then, if no other node holds one.
        case append([TransactionEvent], expectedVersion: UInt64?, claimUntilUs: Int64)
        /// This node's claim until `untilUs`, if no other node holds one.
        case claim(untilUs: Int64)
    }

    /// One write and whom to tell how it went.
    struct Item: Sendable {
        let gid: String
        let work: Work
        let outcome: PostgresWrite
    }

    private struct State {
        var waiting: [Item] = []
        var writing: Set<ExactString> = []
        var idleWriters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    private let state = Mutex(State())
    /// The most appends one statement writes.
    static let batchLimit = 256

    /// Queues `item`; fails it at once when the writers have stopped.
    func enqueue(_ item: Item) {
        let (accepted, writer) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.stopped else { return (false, nil) }
            state.waiting.append(item)
            return (true, state.idleWriters.popLast())
        }
        if !accepted { item.outcome.complete(.failure(Self.stopped)) }
        writer?.resume()
    }

    /// The next batch: the oldest waiting append of each gid not being written, in arrival order.
    /// Empty when there is nothing to take now.
    private func takeBatch() -> [Item] {
        state.withLock { state in
            var batch = [Item]()
            var taken = Set<ExactString>()
            var left = [Item]()
            for item in state.waiting {
                let gid = item.gid.exact
                if batch.count < Self.batchLimit, !state.writing.contains(gid), taken.insert(gid).inserted {
                    batch.append(item)
                } else {
                    // A later append of a gid already taken stays behind it.
                    taken.insert(gid)
                    left.append(item)
                }
            }
            state.waiting = left
            state.writing.formUnion(batch.map(\.gid.exact))
            return batch
        }
    }

    /// Marks `batch` written, so its gids' next appends can be taken.
    func finished(_ batch: [Item]) {
        let writer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.writing.subtract(batch.map(\.gid.exact))
            return state.waiting.isEmpty ? nil : state.idleWriters.popLast()
        }
        writer?.resume()
    }

    /// Waits until an append can be taken or the writers stop (task cancelled).
    private func waitForWork() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (writer: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.stopped || state.waiting.contains(where: { !state.writing.contains($0.gid.exact) }) { return true }
                    state.idleWriters.append(writer)
                    return false
                }
                if now { writer.resume() }
            }
        } onCancel: {
            stop()
        }
    }

    /// Stops taking appends: idle writers return, waiting appends fail.
    func stop() {
        let (writers, dropped) = state.withLock { state in
            state.stopped = true
            defer { state.idleWriters.removeAll(); state.waiting.removeAll() }
            return (state.idleWriters, state.waiting)
        }
        for writer in writers { writer.resume() }
        for item in dropped { item.outcome.complete(.failure(Self.stopped)) }
    }

    static let stopped = RequestError.unavailable("the PostgreSQL store has stopped")

    /// The next batch to write, waiting for one; nil once the writers stop.
    func nextBatch() async -> [Item]? {
        while true {
            let batch = takeBatch()
            if !batch.isEmpty { return batch }
            if state.withLock({ $0.stopped }) { return nil }
            await waitForWork()
        }
    }
}

/// A write queued to a batch: that the batch's statement committed it and whether the claim it
/// asked for was taken, or what kept it out (`StoreConflict` when another writer appended first).
final class PostgresWrite: PendingAppend {
    private let state = Mutex<(result: Result<Bool, any Error>?, waiters: [CheckedContinuation<Bool, any Error>])>((nil, []))

    /// Records `result` unless one is recorded already (the first outcome is the one told).
    func complete(_ result: Result<Bool, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    func durable() async throws {
        _ = try await written()
    }

    /// Whether the write's outcome is known.
    var isCompleted: Bool { state.withLock { $0.result != nil } }

    /// Waits for the batch; whether the claim asked for was taken.
    func written() async throws -> Bool {
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Bool, any Error>) in
            let result = state.withLock { state in
                if state.result == nil { state.waiters.append(waiter) }
                return state.result
            }
            if let result { waiter.resume(with: result) }
        }
    }
}
