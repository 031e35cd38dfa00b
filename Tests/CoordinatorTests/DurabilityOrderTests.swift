@testable import Coordinator
import DTMWire
import Foundation
import Invokers
import MemoryStore
import Modes
import Projections
import Synchronization
import Testing
import TransactionStore

/// A store whose appends count as durable only once someone waits for them: what the coordinator
/// knows to be durable when it calls a branch.
final class WatchedStore: TransactionStore {
    let inner: InMemoryTransactionStore
    let durable = Mutex<[TransactionEvent]>([])

    init(clock: @escaping @Sendable () -> Int64) { inner = InMemoryTransactionStore(clock: clock) }

    struct Watched: PendingAppend {
        let events: [TransactionEvent]
        let store: WatchedStore
        func durable() async throws { store.durable.withLock { $0 += events } }
    }

    func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend {
        _ = try await inner.append(events, to: gid, expectedVersion: expectedVersion)
        return Watched(events: events, store: self)
    }

    func transaction(_ gid: String) async throws -> TransactionState? { try await inner.transaction(gid) }
    func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String] { try await inner.claimDue(atOrBefore: time, limit: limit, lease: lease) }
    func claim(_ gid: String, lease: Duration) async throws -> Bool { try await inner.claim(gid, lease: lease) }
    func release(_ gid: String, holdFor: Duration) async { await inner.release(gid, holdFor: holdFor) }
    func scheduled(after time: Int64, limit: Int) async throws -> [String] { try await inner.scheduled(after: time, limit: limit) }
    func nextDueTime() async throws -> Int64? { try await inner.nextDueTime() }
    func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        try await inner.transactions(matching: filter, page: page, limit: limit)
    }
    func kvRecord(cat: String, key: String) async throws -> KVState? { try await inner.kvRecord(cat: cat, key: key) }
    func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] { try await inner.kvRecords(cat: cat, after: position, limit: limit) }
    func history(of gid: String) async throws -> [RecordedEvent] { try await inner.history(of: gid) }
    func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error> { inner.follow(after: seq) }
}

/// Answers FAILURE for the second action; on a compensation, notes whether `aborting` was durable.
final class CompensationWitness: BranchInvoker {
    let store: WatchedStore
    let abortingWasDurable = Mutex<[Bool]>([])

    init(store: WatchedStore) { self.store = store }

    func invoke(_ call: BranchCall) async -> BranchResult {
        if call.op == "compensate" {
            let durable = store.durable.withLock { events in
                events.contains { if case let .statusChanged(change) = $0.kind { change.to == .aborting } else { false } }
            }
            abortingWasDurable.withLock { $0.append(durable) }
        }
        return call.op == "action" && call.branchID == "02" ? BranchResult(.failure, "no") : BranchResult(.success)
    }
}

@Suite struct DurabilityOrderTests {
    @Test func compensationsAreCalledOnlyOnceAbortingIsDurable() async throws {
        let clock = ManualClock()
        let store = WatchedStore(clock: { clock.now() })
        let witness = CompensationWitness(store: store)
        let coordinator = Coordinator(store: store, invoker: witness, defaults: TransactionDefaults(), clock: clock)
        var request = TransactionRequest()
        request.gid = "ordered"
        request.transType = "saga"
        request.steps = #"[{"action":"h:1/b.B/A1","compensate":"h:1/b.B/C1"},{"action":"h:1/b.B/A2","compensate":"h:1/b.B/C2"}]"#
        request.payloads = [Data(), Data()]
        request.waitResult = true
        await #expect(throws: RequestError.self) { try await coordinator.submit(request) }
        #expect(try await store.transaction("ordered")?.status == .failed)
        // A crash losing an undurable `aborting` would run the action again after its compensation.
        #expect(witness.abortingWasDurable.withLock { $0 } == [true, true])
    }
}
