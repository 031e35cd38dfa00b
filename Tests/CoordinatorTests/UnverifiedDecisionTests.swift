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

/// A store that offers client commands a stale state to decide on, as a shared store's node does
/// for a gid another node changed (or one it never wrote: nil): the append decided on it must
/// fail, and the command must be decided again on the current state.
final class StaleDecisionStore: ForwardingStore {
    let inner: InMemoryTransactionStore
    /// What `decisionState` answers per gid (absent: nil), unverified.
    let stale = Mutex<[String: TransactionState]>([:])
    let freshReads = Mutex(0)

    init(clock: @escaping @Sendable () -> Int64) { inner = InMemoryTransactionStore(clock: clock) }

    func decisionState(_ gid: String) async throws -> (state: TransactionState?, verified: Bool) {
        (stale.withLock { $0[gid] }, false)
    }

    func transaction(_ gid: String) async throws -> TransactionState? {
        freshReads.withLock { $0 += 1 }
        return try await inner.transaction(gid)
    }
}

/// Confirms every call.
struct SucceedingInvoker: BranchInvoker {
    func invoke(_ call: BranchCall) async -> BranchResult { BranchResult(.success) }
}

@Suite struct UnverifiedDecisionTests {
    func setUp() -> (StaleDecisionStore, Coordinator) {
        let clock = ManualClock()
        let store = StaleDecisionStore(clock: { clock.now() })
        return (store, Coordinator(store: store, invoker: SucceedingInvoker(), defaults: TransactionDefaults(), clock: clock))
    }

    func tcc(_ gid: String, waitResult: Bool = false) -> TransactionRequest {
        var request = TransactionRequest()
        request.gid = gid
        request.transType = "tcc"
        request.waitResult = waitResult
        return request
    }

    func branch(_ gid: String, _ id: String) -> BranchRegistrationRequest {
        var branch = BranchRegistrationRequest()
        branch.gid = gid
        branch.transType = "tcc"
        branch.branchID = id
        branch.data = ["confirm": "h:1/b.B/Confirm", "cancel": "h:1/b.B/Cancel"]
        return branch
    }

    @Test func aCommandDecidedOnNothingIsDecidedAgainOnTheStoredTransaction() async throws {
        let (store, coordinator) = setUp()
        // Every decision starts from "never seen" (nil): Prepare again is idempotent, registration
        // and Submit find the prepared transaction, not a new one.
        try await coordinator.prepare(tcc("unseen"))
        try await coordinator.prepare(tcc("unseen"))
        try await coordinator.registerBranch(branch("unseen", "01"))
        try await coordinator.submit(tcc("unseen", waitResult: true))
        let state = try #require(try await store.inner.transaction("unseen"))
        #expect(state.status == .succeed)
        #expect(state.branches.map(\.op) == ["cancel", "confirm"] || state.branches.map(\.op) == ["confirm", "cancel"])
        #expect(try await store.inner.history(of: "unseen").filter { if case .created = $0.event.kind { true } else { false } }.count == 1)
        // Abort of a gid this node "never saw" is refused only after a fresh read says so.
        let reads = store.freshReads.withLock { $0 }
        await #expect(throws: RequestError.self) { try await coordinator.abort(tcc("nowhere")) }
        #expect(store.freshReads.withLock { $0 } > reads)
    }

    @Test func aStaleStateLosesTheAppendAndTheCurrentOneDecides() async throws {
        let (store, coordinator) = setUp()
        try await coordinator.prepare(tcc("raced"))
        let prepared = try #require(try await store.inner.transaction("raced"))
        try await coordinator.registerBranch(branch("raced", "01"))
        try await coordinator.submit(tcc("raced", waitResult: true))
        // This node still holds the prepared state another node has since submitted: a
        // registration decided on it must not land, and dtm's refusal is answered.
        store.stale.withLock { $0["raced"] = prepared }
        await #expect(throws: RequestError.self) { try await coordinator.registerBranch(branch("raced", "02")) }
        let state = try #require(try await store.inner.transaction("raced"))
        #expect(state.status == .succeed)
        #expect(Set(state.branches.map(\.branchID)) == ["01"])
    }
}
