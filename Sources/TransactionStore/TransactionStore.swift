import Foundation
public import Projections

/// Where transactions live: their events and the current state folded from them. The coordinator
/// and the gateways need nothing else, so a store is the one thing a new backend implements
/// (the embedded LMDB log, a database shared by several nodes).
///
/// Appends are compare-and-append: each names the version of the transaction it was decided
/// on, and fails with `StoreConflict` when another writer got there first. Due work is claimed
/// with a lease, so one node drives a transaction at a time. Listings page by an opaque token.
public protocol TransactionStore: Sendable {
    /// The current state of `gid`; nil when the gid is unknown.
    func transaction(_ gid: String) async throws -> TransactionState?

    /// The state to decide a client command for `gid` on, as cheaply as the store can give it.
    /// Unverified (`verified` false) it may be stale — this process's own copy of what it wrote
    /// last, or nil for a gid it never wrote — and an append decided on it fails with
    /// `StoreConflict` if so; a decision that appends nothing must be taken again on `transaction`.
    func decisionState(_ gid: String) async throws -> (state: TransactionState?, verified: Bool)

    /// Queues `events` for `gid` (or a KV record's stream) if its current version is
    /// `expectedVersion` (nil: the gid must not exist yet), and returns at once; `PendingAppend.durable()` waits for the commit.
    /// Appends queued one after another are committed in that order. Throws `StoreConflict`
    /// when the version differs, from `append` or (a shared store) from `durable()`.
    func append(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?) async throws -> any PendingAppend

    /// Appends as `append` does, waits until the events are durable, and claims `gid` for `lease`
    /// as `claim` does (a round follows at once); whether the claim was taken.
    func appendAndClaim(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?, lease: Duration) async throws -> Bool

    /// Claims up to `limit` unfinished transactions due at or before `time` (µs), earliest first:
    /// no other claim returns them until `release` or until `lease` has passed.
    func claimDue(atOrBefore time: Int64, limit: Int, lease: Duration) async throws -> [String]

    /// Claims `gid` for `lease`, due or not, unless another claim holds it; renews this node's own
    /// claim. False when another node (or another round of this one) holds it.
    func claim(_ gid: String, lease: Duration) async throws -> Bool

    /// Ends the claim on `gid`; with `holdFor`, it stays claimed that long (a transaction whose
    /// round failed is left alone a while).
    func release(_ gid: String, holdFor: Duration) async

    /// Up to `limit` unfinished transactions scheduled later than `time` (µs), earliest first,
    /// claimed or not (dtm's resetCronTime).
    func scheduled(after time: Int64, limit: Int) async throws -> [String]

    /// When the earliest unclaimed unfinished transaction is due (µs); nil when none is scheduled.
    func nextDueTime() async throws -> Int64?

    /// How many unfinished transactions are due at or before `time` (µs) and not claimed,
    /// counted up to `limit` (the due backlog metric).
    func dueCount(atOrBefore time: Int64, upTo limit: Int) async throws -> Int

    /// How many transactions each status holds, each counted up to `limit` (the admin page's
    /// counts; a count of `limit` means at least that many).
    func countsByStatus(upTo limit: Int) async throws -> [TransactionStatus: Int]

    /// The seq of the last event in the log, 0 when it is empty: where a live view starts following.
    func lastSeq() async throws -> UInt64

    /// The events of `gid` with the hash each was stored with, and what a check of their links
    /// in the store's hash chain found (the admin page's timeline).
    func auditedHistory(of gid: String) async throws -> AuditedHistory

    /// Transactions newest first by create time that `filter` accepts, one page of at most `limit`.
    func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage

    /// dtm's KV record `key` of `cat`, as folded from its stream (`KVStream.id`); a deleted record
    /// is returned as a tombstone (`deleted`), so its stream version is known. nil: never written.
    /// Records are written by appending `kv_changed` events to their stream, expecting its
    /// `streamVersion` (nil for a record never written).
    func kvRecord(cat: String, key: String) async throws -> KVState?

    /// The live records of `cat` in key order (by bytes) after key `position`, at most `limit`.
    func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState]

    /// Every event of `gid` in order; empty when the gid is unknown.
    func history(of gid: String) async throws -> [RecordedEvent]

    /// The events appended after global position `seq`, then each new one as it is appended.
    func follow(after seq: UInt64) -> any AsyncSequence<RecordedEvent, any Error>
}

/// An append that has been queued; `durable()` returns once it is committed.
public protocol PendingAppend: Sendable {
    func durable() async throws
}

/// Another writer appended to the transaction since the caller read it.
public struct StoreConflict: Error, Equatable, CustomStringConvertible {
    public let gid: String
    public let expectedVersion: UInt64?
    public let actualVersion: UInt64?

    public init(gid: String, expectedVersion: UInt64?, actualVersion: UInt64?) {
        self.gid = gid
        self.expectedVersion = expectedVersion
        self.actualVersion = actualVersion
    }

    public var description: String {
        func text(_ version: UInt64?) -> String { version.map { "version \($0)" } ?? "no transaction" }
        return "transaction \(gid) changed under this writer: expected \(text(expectedVersion)), found \(text(actualVersion))"
    }
}

/// Which transactions a listing returns; every criterion left nil accepts all.
public struct TransactionFilter: Sendable {
    public var status: TransactionStatus?
    public var transType: String?
    /// Created at or after this time (µs).
    public var createdFrom: Int64?
    /// Created at or before this time (µs).
    public var createdThrough: Int64?
    /// Gids that start with these bytes.
    public var gidPrefix: [UInt8]?

    public init(
        status: TransactionStatus? = nil, transType: String? = nil, createdFrom: Int64? = nil, createdThrough: Int64? = nil,
        gidPrefix: [UInt8]? = nil
    ) {
        self.status = status
        self.transType = transType
        self.createdFrom = createdFrom
        self.createdThrough = createdThrough
        self.gidPrefix = gidPrefix
    }

    /// Whether `state` passes the filter.
    public func accepts(_ state: TransactionState) -> Bool {
        (gidPrefix.map { state.gid.utf8.starts(with: $0) } ?? true)
            && (status.map { state.status == $0 } ?? true)
            && (transType.map { $0.isEmpty || state.transType == $0 } ?? true)
            && (createdFrom.map { state.createTimeUs >= $0 } ?? true)
            && (createdThrough.map { state.createTimeUs <= $0 } ?? true)
    }
}

/// Where a listing goes on: opaque to clients, which send back what a page returned (as text).
public struct PageToken: Sendable, Equatable {
    /// The store's own position bytes.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The token as clients carry it: URL-safe base64 without padding, so it needs no escaping
    /// in a query string (where `+` would read as a space).
    public var text: String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// A token a client sent back; nil when it is not one a page returned.
    public init?(text: String) {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: standard) else { return nil }
        bytes = Array(data)
    }
}

/// One page of a listing.
public struct TransactionPage: Sendable {
    public let transactions: [TransactionState]
    /// Where the next page starts; nil when this is the last.
    public let next: PageToken?

    /// The most a page holds, and what a listing that names no size gets.
    public static let maximumSize = 1000
    public static let defaultSize = 100

    /// The page size for a requested `limit`: the default for 0, at most `maximumSize`.
    public static func size(_ limit: Int) -> Int {
        limit <= 0 ? defaultSize : min(limit, maximumSize)
    }

    public init(transactions: [TransactionState], next: PageToken?) {
        self.transactions = transactions
        self.next = next
    }
}

extension TransactionStore {
    /// The append, then the claim.
    public func appendAndClaim(_ events: [TransactionEvent], to gid: String, expectedVersion: UInt64?, lease: Duration) async throws -> Bool {
        try await append(events, to: gid, expectedVersion: expectedVersion).durable()
        return try await claim(gid, lease: lease)
    }

    /// A store whose reads are cheap decides on the current state.
    public func decisionState(_ gid: String) async throws -> (state: TransactionState?, verified: Bool) {
        (try await transaction(gid), true)
    }
}

/// A transaction's events as stored, with their hashes and the check of their hash chain.
public struct AuditedHistory: Sendable {
    /// The events, oldest first.
    public var events: [RecordedEvent]
    /// Each event's stored hash, in the same order; empty when the store keeps no hash chain.
    public var hashes: [[UInt8]]
    /// What the check found wrong; empty when every event is intact and linked.
    public var problems: [String]
    /// What was checked, in a sentence (the chain's kind differs between stores).
    public var checked: String

    public init(events: [RecordedEvent], hashes: [[UInt8]], problems: [String], checked: String) {
        self.events = events
        self.hashes = hashes
        self.problems = problems
        self.checked = checked
    }
}
