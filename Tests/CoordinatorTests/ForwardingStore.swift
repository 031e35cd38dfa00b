import MemoryStore
import Projections
import TransactionStore

/// A test store that changes one behaviour of the in-memory store and forwards the rest to it.
protocol ForwardingStore: TransactionStore {
    var inner: InMemoryTransactionStore { get }
}

extension ForwardingStore {
    func transaction(_ gid: String) async throws -> TransactionState? { try await inner.transaction(gid) }
    func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend {
        try await inner.append(events, to: gid, expectedVersion: expectedVersion)
    }
    func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String] { try await inner.claimDue(atOrBefore: time, limit: limit, lease: lease) }
    func claim(_ gid: String, lease: Duration) async throws -> Bool { try await inner.claim(gid, lease: lease) }
    func release(_ gid: String, holdFor: Duration) async { await inner.release(gid, holdFor: holdFor) }
    func scheduled(after time: Int64, limit: Int) async throws -> [String] { try await inner.scheduled(after: time, limit: limit) }
    func nextDueTime() async throws -> Int64? { try await inner.nextDueTime() }
    func dueCount(atOrBefore time: Int64, upTo limit: Int) async throws -> Int { try await inner.dueCount(atOrBefore: time, upTo: limit) }
    func countsByStatus(upTo limit: Int) async throws -> [TransactionStatus: Int] { try await inner.countsByStatus(upTo: limit) }
    func lastSeq() async throws -> UInt64 { try await inner.lastSeq() }
    func auditedHistory(of gid: String) async throws -> AuditedHistory { try await inner.auditedHistory(of: gid) }
    func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        try await inner.transactions(matching: filter, page: page, limit: limit)
    }
    func kvRecord(cat: String, key: String) async throws -> KVState? { try await inner.kvRecord(cat: cat, key: key) }
    func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] { try await inner.kvRecords(cat: cat, after: position, limit: limit) }
    func history(of gid: String) async throws -> [RecordedEvent] { try await inner.history(of: gid) }
    func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error> { inner.follow(after: seq) }
}
