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
final class WatchedStore: ForwardingStore {
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
