import DTMWire
import Foundation
@testable import LMDBStore
import MemoryStore
import PostgresStore
import Projections
import TransactionFixtures
import Testing
import TransactionStore

/// The stores this project has, each under the same tests.
enum StoreKind: String, CaseIterable, Sendable {
    case lmdb, memory, postgres

    /// The private PostgreSQL cluster the test command starts (`SWIFTDTM_TEST_POSTGRES=host:port`).
    static let postgresAddress = ProcessInfo.processInfo.environment["SWIFTDTM_TEST_POSTGRES"]

    /// Every store this run can reach: PostgreSQL too under the test command.
    static var available: [StoreKind] { postgresAddress == nil ? [.lmdb, .memory] : allCases }

    /// A new, empty store of this kind, closed after `body`.
    func with(_ body: (any TransactionStore) async throws -> Void) async throws {
        switch self {
        case .memory:
            try await body(InMemoryTransactionStore(clock: { 1_000_000 }))
        case .lmdb:
            let path = temporaryDirectory("store")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let store = try await openStore(path)
            try await body(store)
            try await store.close()
        case .postgres:
            let address = try #require(Self.postgresAddress)
            var configuration = PostgresStoreConfiguration()
            let parts = address.split(separator: ":")
            configuration.host = parts.dropLast().joined(separator: ":")
            configuration.port = try #require(parts.last.flatMap { Int($0) })
            configuration.database = "postgres"
            configuration.sslMode = .disable
            configuration.schema = "store_test_\(UInt32.random(in: 0...UInt32.max))"  // a fresh store per test
            let store = try PostgresTransactionStore(configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                defer { group.cancelAll() }
                try await store.prepareSchema()
                try await body(store)
            }
        }
    }
}

/// What every `TransactionStore` must do: compare-and-append, claims, listing, history, follow.
@Suite struct TransactionStoreTests {
    let created = sagaCreated(status: .submitted, due: 1_000)
    let scheduled = TransactionEvent.retryScheduled(.with { $0.dueUs = 2_000; $0.retryInterval = 10 })

    @Test(arguments: StoreKind.available) func appendsCompareTheVersionIncludingQueuedOnes(kind: StoreKind) async throws {
        try await kind.with { store in
        // Two appends queued back to back: the second expects the version the first leads to.
        let first = try await store.append([created], to: "g", expectedVersion: nil)
        let second = try await store.append([scheduled, scheduled], to: "g", expectedVersion: 1)
        try await first.durable()
        try await second.durable()
        #expect(try await store.transaction("g")?.version == 3)
        // The conflict comes from `append`, or from `durable()` on a shared store.
        await #expect(throws: StoreConflict(gid: "g", expectedVersion: 1, actualVersion: 3)) {
            try await store.append([scheduled], to: "g", expectedVersion: 1).durable()
        }
        await #expect(throws: StoreConflict(gid: "g", expectedVersion: nil, actualVersion: 3)) {
            try await store.append([created], to: "g", expectedVersion: nil).durable()
        }
        // A canonically equivalent gid is another transaction.
        try await store.append([created], to: "cafe\u{301}", expectedVersion: nil).durable()
        await #expect(throws: StoreConflict.self) { try await store.append([created], to: "cafe\u{301}", expectedVersion: nil).durable() }
        try await store.append([created], to: "caf\u{E9}", expectedVersion: nil).durable()
        #expect(try await store.history(of: "g").map(\.event) == [created, scheduled, scheduled])
        }
    }

    @Test(arguments: StoreKind.available) func kvRecordsFoldTheirStreamsAndCompareTheStreamVersion(kind: StoreKind) async throws {
        try await kind.with { store in
            func change(_ key: String, _ value: String, deleted: Bool = false) -> TransactionEvent {
                .kvChanged(.with { $0.cat = "topics"; $0.key = key; $0.value = value; $0.deleted = deleted })
            }
            try await store.append([change("b", "1")], to: KVStream.id(cat: "topics", key: "b"), expectedVersion: nil).durable()
            try await store.append([change("b", "2")], to: KVStream.id(cat: "topics", key: "b"), expectedVersion: 1).durable()
            try await store.append([change("a", "x")], to: KVStream.id(cat: "topics", key: "a"), expectedVersion: nil).durable()
            await #expect(throws: StoreConflict.self) {
                try await store.append([change("b", "3")], to: KVStream.id(cat: "topics", key: "b"), expectedVersion: 1).durable()
            }
            let b = try #require(try await store.kvRecord(cat: "topics", key: "b"))
            #expect(b.value == "2" && b.version == 2 && b.streamVersion == 2 && b.id == 1)
            #expect(try await store.kvRecords(cat: "topics", after: nil, limit: 10).map(\.key) == ["a", "b"])
            #expect(try await store.kvRecords(cat: "topics", after: "a", limit: 10).map(\.key) == ["b"])
            #expect(try await store.kvRecords(cat: "other", after: nil, limit: 10).isEmpty)
            #expect(try await store.transaction(KVStream.id(cat: "topics", key: "b")) == nil, "a KV stream is no transaction")
            // Deleted: a tombstone keeps the stream version; created again, dtm's version starts over.
            try await store.append([change("b", "", deleted: true)], to: KVStream.id(cat: "topics", key: "b"), expectedVersion: 2).durable()
            #expect(try await store.kvRecord(cat: "topics", key: "b")?.deleted == true)
            #expect(try await store.kvRecords(cat: "topics", after: nil, limit: 10).map(\.key) == ["a"])
            try await store.append([change("b", "new")], to: KVStream.id(cat: "topics", key: "b"), expectedVersion: 3).durable()
            let again = try #require(try await store.kvRecord(cat: "topics", key: "b"))
            #expect(again.version == 1 && again.streamVersion == 4 && again.id == 5 && !again.deleted)
        }
    }

    @Test(arguments: StoreKind.available) func dueWorkIsClaimedOnceUntilReleased(kind: StoreKind) async throws {
        try await kind.with { store in
        for gid in ["a", "b", "c"] { try await store.append([created], to: gid, expectedVersion: nil).durable() }
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 2, lease: .seconds(60)) == ["a", "b"])
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 2, lease: .seconds(60)) == ["c"])
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 2, lease: .seconds(60)).isEmpty)
        #expect(try await store.nextDueTime() == nil, "every due transaction is claimed")
        await store.release("b", holdFor: .zero)
        #expect(try await store.nextDueTime() == 1_000)
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 5, lease: .milliseconds(1)) == ["b"])
        try await Task.sleep(for: .milliseconds(5))
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 5, lease: .seconds(60)) == ["b"], "an expired lease is claimed again")
        await store.release("a", holdFor: .seconds(60))
        #expect(try await store.claimDue(atOrBefore: 5_000, limit: 5, lease: .seconds(60)).isEmpty, "a held claim stays claimed")
        }
    }

    @Test(arguments: StoreKind.available) func listingsPageByOpaqueTokens(kind: StoreKind) async throws {
        try await kind.with { store in
        for index in 0..<5 { try await store.append([created], to: "g\(index)", expectedVersion: nil).durable() }
        let first = try await store.transactions(matching: TransactionFilter(transType: "saga"), page: nil, limit: 3)
        #expect(first.transactions.count == 3)
        let token = try #require(first.next)
        #expect(PageToken(text: token.text) == token)
        let second = try await store.transactions(matching: TransactionFilter(), page: token, limit: 3)
        #expect(second.transactions.count == 2)
        #expect(second.next == nil)
        #expect(Set((first.transactions + second.transactions).map(\.gid)) == Set((0..<5).map { "g\($0)" }))
        #expect(try await store.transactions(matching: TransactionFilter(status: .failed), page: nil, limit: 10).transactions.isEmpty)
        #expect(TransactionPage.size(0) == 100 && TransactionPage.size(5000) == 1000)
        }
    }

    @Test(arguments: StoreKind.available) func statusCountsStopAtTheirLimit(kind: StoreKind) async throws {
        try await kind.with { store in
        for index in 0..<3 { try await store.append([created], to: "s\(index)", expectedVersion: nil).durable() }
        try await store.append([sagaCreated(status: .prepared)], to: "p", expectedVersion: nil).durable()
        #expect(try await store.countsByStatus(upTo: 2) == [.submitted: 2, .prepared: 1])
        #expect(try await store.countsByStatus(upTo: 10) == [.submitted: 3, .prepared: 1])
        }
    }

    @Test(arguments: StoreKind.available) func aGidPrefixFillsItsPagesAndComparesBytes(kind: StoreKind) async throws {
        try await kind.with { store in
        // Interleaved with other gids, so a prefix applied after the page query would leave pages short.
        for index in 0..<5 {
            for gid in ["a\(index)", "b\(index)"] { try await store.append([created], to: gid, expectedVersion: nil).durable() }
        }
        for gid in ["caf\u{E9}-nfc", "cafe\u{301}-nfd"] { try await store.append([created], to: gid, expectedVersion: nil).durable() }
        let first = try await store.transactions(matching: TransactionFilter(gidPrefix: Array("a".utf8)), page: nil, limit: 3)
        #expect(first.transactions.count == 3)
        let second = try await store.transactions(matching: TransactionFilter(gidPrefix: Array("a".utf8)), page: try #require(first.next), limit: 3)
        #expect(second.transactions.count == 2 && second.next == nil)
        #expect(Set((first.transactions + second.transactions).map(\.gid)) == Set((0..<5).map { "a\($0)" }))
        // "café" written two ways is equal as a Swift String, not as bytes: only the NFC gid matches.
        let nfc = try await store.transactions(matching: TransactionFilter(gidPrefix: Array("caf\u{E9}".utf8)), page: nil, limit: 10)
        #expect(nfc.transactions.map { Array($0.gid.utf8) } == [Array("caf\u{E9}-nfc".utf8)])
        }
    }

    @Test(arguments: StoreKind.available) func followReplaysThenWaitsForNewEvents(kind: StoreKind) async throws {
        try await kind.with { store in
            try await store.append([created], to: "a", expectedVersion: nil).durable()
            var events = store.follow(after: 0).makeAsyncIterator()
            #expect(try await events.next()?.gid == "a")
            try await store.append([created], to: "b", expectedVersion: nil).durable()
            let next = try await events.next()
            #expect(next?.gid == "b")
            #expect(next?.seq == 2)
        }
    }
}
