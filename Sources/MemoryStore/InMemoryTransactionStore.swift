import ByteIdentity
import Foundation
public import Projections
import Synchronization
public import TransactionStore

/// A `TransactionStore` in memory: the same compare-and-append, claims and listings as a durable
/// store, folded with the same `apply`, but gone when the process ends. For tests, and for
/// trying the coordinator without a data directory.
public final class InMemoryTransactionStore: TransactionStore {
    private struct Contents {
        /// Every event in append order (the global position is the index + 1).
        var events: [RecordedEvent] = []
        var states: [ExactString: TransactionState] = [:]
        /// KV records by stream id, tombstones included.
        var records: [ExactString: KVState] = [:]
        /// Claimed transactions, each with when its claim ends.
        var claims: [ExactString: ContinuousClock.Instant] = [:]
        /// Followers waiting for events past the last one.
        var waiting: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    private let contents = Mutex(Contents())
    private let clock: @Sendable () -> Int64

    /// A new, empty store; events are stamped with `clock` (µs since 1970; the coordinator's
    /// `TransactionClock.now`).
    public init(clock: @escaping @Sendable () -> Int64) {
        self.clock = clock
    }

    public func transaction(_ gid: String) async throws -> TransactionState? {
        contents.withLock { $0.states[gid.exact] }
    }

    public func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend {
        let time = clock()
        let waiting = try contents.withLock { contents in
            let key = gid.exact
            let isKV = KVStream.isKV(gid)
            var state = contents.states[key]
            var record = contents.records[key]
            let current = isKV ? record?.streamVersion : state?.version
            guard current == expectedVersion else {
                throw StoreConflict(gid: gid, expectedVersion: expectedVersion, actualVersion: current)
            }
            for event in events {
                let recorded = RecordedEvent(seq: UInt64(contents.events.count + 1), time: time, gid: gid, event: event)
                contents.events.append(recorded)
                if isKV { record = applyKV(recorded, to: record) } else { state = apply(recorded, to: state) }
            }
            if isKV { contents.records[key] = record } else { contents.states[key] = state }
            let waiting = contents.waiting.values
            contents.waiting = [:]
            return waiting
        }
        for follower in waiting { follower.resume() }
        return AppliedAppend()
    }

    public func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String] {
        let now = ContinuousClock.now
        return contents.withLock { contents in
            let due = contents.states.values
                .filter { !$0.status.isTerminal && $0.nextDueUs > 0 && $0.nextDueUs <= time }
                .filter { contents.claims[$0.gid.exact].map { $0 <= now } ?? true }
                .sorted { ($0.nextDueUs, $0.gid.exact) < ($1.nextDueUs, $1.gid.exact) }
                .prefix(max(limit, 0))
            for state in due { contents.claims[state.gid.exact] = now + lease }
            return due.map(\.gid)
        }
    }

    /// One process: a claim held here is this process's own, so claiming renews it.
    public func claim(_ gid: String, lease: Duration) async throws -> Bool {
        contents.withLock { $0.claims[gid.exact] = .now + lease }
        return true
    }

    public func release(_ gid: String, holdFor: Duration) async {
        contents.withLock { $0.claims[gid.exact] = holdFor > .zero ? .now + holdFor : nil }
    }

    public func scheduled(after time: Int64, limit: Int) async throws -> [String] {
        contents.withLock { contents in
            contents.states.values
                .filter { !$0.status.isTerminal && $0.nextDueUs > 0 && $0.nextDueUs > time }
                .sorted { ($0.nextDueUs, $0.gid.exact) < ($1.nextDueUs, $1.gid.exact) }
                .prefix(max(limit, 0))
                .map(\.gid)
        }
    }

    public func nextDueTime() async throws -> Int64? {
        let now = ContinuousClock.now
        return contents.withLock { contents in
            contents.states.values
                .filter { !$0.status.isTerminal && $0.nextDueUs > 0 && (contents.claims[$0.gid.exact].map { $0 <= now } ?? true) }
                .map(\.nextDueUs)
                .min()
        }
    }

    public func dueCount(atOrBefore time: Int64, upTo limit: Int) async throws -> Int {
        let now = ContinuousClock.now
        return contents.withLock { contents in
            min(limit, contents.states.values.count { state in
                !state.status.isTerminal && state.nextDueUs > 0 && state.nextDueUs <= time
                    && (contents.claims[state.gid.exact].map { $0 <= now } ?? true)
            })
        }
    }

    public func countsByStatus(upTo limit: Int) async throws -> [TransactionStatus: Int] {
        contents.withLock { contents in
            var counts: [TransactionStatus: Int] = [:]
            for state in contents.states.values { counts[state.status, default: 0] += 1 }
            return counts.mapValues { min($0, limit) }
        }
    }

    public func auditedHistory(of gid: String) async throws -> AuditedHistory {
        AuditedHistory(events: try await history(of: gid), hashes: [], problems: [], checked: "this store keeps no hash chain")
    }

    public func lastSeq() async throws -> UInt64 {
        contents.withLock { contents in contents.states.values.map(\.lastSeq).max() ?? 0 }
    }

    public func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        contents.withLock { contents in
            // Newest first; the token is the position (in this order) where the next page starts.
            let ordered = contents.states.values.sorted { ($0.createTimeUs, $0.gid.exact) > ($1.createTimeUs, $1.gid.exact) }
            let start = page.flatMap { Int(String(decoding: $0.bytes, as: UTF8.self)) } ?? 0
            var found = [TransactionState]()
            var index = min(max(start, 0), ordered.count)
            while index < ordered.count, found.count < limit {
                if filter.accepts(ordered[index]) { found.append(ordered[index]) }
                index += 1
            }
            let next = index < ordered.count ? PageToken(bytes: Array(String(index).utf8)) : nil
            return TransactionPage(transactions: found, next: next)
        }
    }

    public func kvRecord(cat: String, key: String) async throws -> KVState? {
        contents.withLock { $0.records[KVStream.id(cat: cat, key: key).exact] }
    }

    public func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] {
        contents.withLock { contents in
            contents.records.values
                .filter { !$0.deleted && $0.cat.hasSameBytes(as: cat) }
                .sorted { $0.key.exact < $1.key.exact }
                .filter { record in position.map { record.key.exact > $0.exact } ?? true }
                .prefix(max(limit, 0))
                .map { $0 }
        }
    }

    public func history(of gid: String) async throws -> [RecordedEvent] {
        contents.withLock { contents in contents.events.filter { $0.gid.hasSameBytes(as: gid) } }
    }

    public func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error> {
        Follower(store: self, position: seq)
    }

    /// The events past `position`, waiting for one when there are none yet; empty once cancelled.
    fileprivate func events(after position: UInt64) async -> [RecordedEvent] {
        let id = UUID()
        while !Task.isCancelled {
            if let found = contents.withLock({ $0.events.count > position ? Array($0.events[Int(position)...]) : nil }) {
                return found
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = contents.withLock { contents -> Bool in
                        if contents.events.count > position || Task.isCancelled { return true }
                        contents.waiting[id] = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                contents.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
            }
        }
        return []
    }
}

/// Reads a store's events from a position on, waiting for new ones.
struct Follower: AsyncSequence, Sendable {
    let store: InMemoryTransactionStore
    let position: UInt64

    func makeAsyncIterator() -> Iterator { Iterator(store: store, position: position) }

    struct Iterator: AsyncIteratorProtocol {
        let store: InMemoryTransactionStore
        var position: UInt64
        var buffered: [RecordedEvent] = []

        mutating func next() async throws -> RecordedEvent? {
            if buffered.isEmpty {
                buffered = await store.events(after: position)
                if buffered.isEmpty { return nil }
            }
            let event = buffered.removeFirst()
            position = event.seq
            return event
        }
    }
}

/// An append already applied: nothing to wait for.
struct AppliedAppend: PendingAppend {
    func durable() async throws {}
}
