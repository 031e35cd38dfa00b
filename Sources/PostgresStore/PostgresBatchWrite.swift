import ByteIdentity
import Foundation
import NIOCore
import NIOFoundationCompat
import PostgresNIO
import Projections
import SwiftProtobuf
import DTMWire
import TransactionStore

/// Writing batches of transaction appends and claims: every append of a batch is decided
/// separately (compare-and-append on its transaction's version and last hash), every claim taken
/// only where no other node holds one, all by one statement committed once.
extension PostgresTransactionStore {
    /// One writer (`index` of this node's): takes a batch, writes it, until the store stops.
    func writeBatches(index: Int) async {
        var chain = WriterChain(writer: "\(configuration.node)/\(index)")
        while let batch = await queue.nextBatch() {
            await write(batch, chain: &chain)
            queue.finished(batch)
        }
    }

    /// A writer's chain of batches (`swiftdtm_batches`): each batch row that inserted events
    /// holds their seqs and a SHA-256 over the previous batch's hash and each event's seq and
    /// hash, so a whole-log verify can tell that no event — or whole transaction — was removed,
    /// without every writer of every node serialising on one row.
    struct WriterChain {
        let writer: String
        /// The last batch row's number and hash; unknown after a statement whose outcome is not
        /// known (read again before the next one).
        var last: (n: Int64, hash: Data)? = (0, Data(count: 32))
    }

    /// An append of a batch: the events, the version they were decided on, whom to tell.
    private struct Append {
        let item: PostgresWriteQueue.Item
        let events: [TransactionEvent]
        let expectedVersion: UInt64?
        let claimUntilUs: Int64
        var gid: String { item.gid }
    }

    /// An append ready to be written: the state it leaves and its event rows.
    private struct PreparedAppend {
        let append: Append
        let base: (state: TransactionState, lastHash: Data)?
        let state: TransactionState
        let rows: EventRows
        let seqs: [Int64]
    }

    /// Writes `batch` and completes each of its writes. When the statement fails as a whole, each
    /// write is tried on its own so one bad append cannot fail the others.
    func write(_ batch: [PostgresWriteQueue.Item], chain: inout WriterChain) async {
        do {
            try await writeTogether(batch, chain: &chain)
        } catch {
            // Whether the statement committed is not known: the chain head is read again.
            chain.last = nil
            let cause = Self.cause(of: error)
            guard batch.count > 1 else {
                forget(batch[0].gid)
                var failure = Self.writeFailure(cause, item: batch[0])
                if let conflict = failure as? StoreConflict, conflict.actualVersion == nil {
                    failure = await withActualVersions([conflict])[0]
                }
                batch[0].outcome.complete(.failure(failure))
                return
            }
            logger.debug("a batch of \(batch.count) writes failed; writing them one by one", metadata: ["error": "\(Self.describe(cause))"])
            // Those already answered (a conflict found before the statement) stay answered.
            for item in batch where !item.outcome.isCompleted { await write([item], chain: &chain) }
        }
    }

    private func writeTogether(_ batch: [PostgresWriteQueue.Item], chain: inout WriterChain) async throws {
        var appends = [Append](), claims = [(item: PostgresWriteQueue.Item, untilUs: Int64)]()
        for item in batch {
            switch item.work {
            case let .append(events, expectedVersion, claimUntilUs):
                appends.append(Append(item: item, events: events, expectedVersion: expectedVersion, claimUntilUs: claimUntilUs))
            case let .claim(untilUs): claims.append((item, untilUs))
            }
        }
        let prepared = try await prepare(appends)
        guard !prepared.isEmpty || !claims.isEmpty else { return }
        if chain.last == nil { chain.last = try await chainHead(of: chain.writer) }
        let last = chain.last ?? (0, Data(count: 32))
        let started = ContinuousClock.now
        let (written, claimed, batchHash) = try await writeStatement(
            prepared, claims: claims.map { ($0.item.gid, $0.untilUs) }, writer: chain.writer, batch: last.n + 1, previous: last.hash)
        let appended = prepared.filter { written[$0.append.gid.exact] != nil }.reduce(0) { $0 + $1.append.events.count }
        StoreMetrics.groupCommitted(store: "postgres", events: appended, duration: ContinuousClock.now - started)
        if let batchHash { chain.last = (last.n + 1, batchHash) }
        var lost = [PreparedAppend]()
        for append in prepared {
            if let claimedToo = written[append.append.gid.exact] {
                remember(append.append.gid, state: append.state, lastHash: append.rows.lastHash)
                append.append.item.outcome.complete(.success(claimedToo))
            } else {
                // Another node appended first: what it left is re-read by the caller.
                forget(append.append.gid)
                lost.append(append)
            }
        }
        if !lost.isEmpty {
            let conflicts = await withActualVersions(lost.map {
                StoreConflict(gid: $0.append.gid, expectedVersion: $0.append.expectedVersion, actualVersion: nil)
            })
            for (append, conflict) in zip(lost, conflicts) { append.append.item.outcome.complete(.failure(conflict)) }
        }
        for (item, _) in claims { item.outcome.complete(.success(claimed.contains(item.gid.exact))) }
    }

    /// The appends of a batch that can be written, with their states and seqs; the others (decided
    /// on a version that is no longer the stored one, or invalid) are completed with their failure.
    private func prepare(_ appends: [Append]) async throws -> [PreparedAppend] {
        // The state each append starts from: this node's copy of what it wrote last, else read.
        var bases = [ExactString: (state: TransactionState, lastHash: Data)]()
        var unread = [ByteBuffer]()
        for append in appends {
            guard let expected = append.expectedVersion else { continue }
            if let cached = recent.withLock({ $0[append.gid.exact] }), cached.state.version == expected {
                bases[append.gid.exact] = cached
            } else {
                unread.append(ByteBuffer(bytes: Array(append.gid.utf8)))
            }
        }
        if !unread.isEmpty {
            let rows = try await client.query(
                "SELECT gid, state, last_hash FROM \(unescaped: prefix)transactions WHERE gid = ANY(\(unread)::bytea[])", logger: logger)
            for try await (gid, bytes, hash) in rows.decode((Data, Data, Data).self) {
                bases[String(decoding: gid, as: UTF8.self).exact] = (try TransactionState(serializedBytes: bytes), hash)
            }
        }
        var ready = [(append: Append, base: (state: TransactionState, lastHash: Data)?)]()
        for append in appends {
            let base = bases[append.gid.exact]
            if let expected = append.expectedVersion, base?.state.version != expected {
                forget(append.gid)
                append.item.outcome.complete(.failure(StoreConflict(gid: append.gid, expectedVersion: expected, actualVersion: base?.state.version)))
            } else {
                ready.append((append, base))
            }
        }
        guard !ready.isEmpty else { return [] }
        let total = ready.reduce(0) { $0 + $1.append.events.count }
        var seqs = [Int64]()
        for try await seq in try await client.execute(NextSeqsStatement(count: Int32(clamping: total)), logger: logger) { seqs.append(seq) }
        guard seqs.count == total else { throw RequestError.unavailable("PostgreSQL returned \(seqs.count) seqs for \(total) events") }
        seqs.sort()
        var prepared = [PreparedAppend]()
        var next = seqs.startIndex
        for (append, base) in ready {
            let own = Array(seqs[next..<(next + append.events.count)])
            next += append.events.count
            do {
                prepared.append(try prepare(append, base: base, seqs: own))
            } catch {
                forget(append.gid)
                append.item.outcome.complete(.failure(error))
            }
        }
        return prepared
    }

    private func prepare(_ append: Append, base: (state: TransactionState, lastHash: Data)?, seqs: [Int64]) throws -> PreparedAppend {
        let rows = try eventRows(append.events, stream: Data(append.gid.utf8), after: Int64(clamping: append.expectedVersion ?? 0), previous: base?.lastHash ?? Data(count: 32))
        var state = base?.state
        for (event, seq) in zip(append.events, seqs) {
            state = apply(RecordedEvent(seq: UInt64(clamping: seq), time: rows.time, gid: append.gid, event: event), to: state)
        }
        guard let state else { throw RequestError.invalidArgument("the first event of transaction \(append.gid) must be `created`") }
        return PreparedAppend(append: append, base: base, state: state, rows: rows, seqs: seqs)
    }

    /// One statement for the whole batch: each existing state row is updated only at the version
    /// and last hash its append was decided on, each new one inserted only if still absent, the
    /// event rows of exactly those appends inserted, and each claim taken where no other node
    /// holds an unexpired one (by itself, or with an append). Returns the gids written (with
    /// whether their append also took its claim) and the gids claimed.
    /// The last batch row of `writer` (0 and zeros when it has none).
    private func chainHead(of writer: String) async throws -> (n: Int64, hash: Data) {
        let rows = try await client.query(
            "SELECT n, hash FROM \(unescaped: prefix)batches WHERE writer = \(writer) ORDER BY n DESC LIMIT 1", logger: logger)
        for try await (n, hash) in rows.decode((Int64, Data).self) { return (n, hash) }
        return (0, Data(count: 32))
    }

    private func writeStatement(
        _ batch: [PreparedAppend], claims: [(gid: String, untilUs: Int64)], writer: String, batch number: Int64, previous: Data
    ) async throws -> (written: [ExactString: Bool], claimed: Set<ExactString>, batchHash: Data?) {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        var gids = [ByteBuffer](), isNew = [Bool](), expected = [Int64](), expectedHashes = [ByteBuffer](), versions = [Int64]()
        var lastHashes = [ByteBuffer](), statuses = [Int16](), transTypes = [String](), created = [Int64](), dues = [Int64]()
        var states = [ByteBuffer](), finished = [Bool](), claimUntil = [Int64]()
        var seqs = [Int64](), streams = [ByteBuffer](), numbers = [Int64](), times = [Int64](), types = [String]()
        var payloads = [ByteBuffer](), previousHashes = [ByteBuffer](), hashes = [ByteBuffer]()
        for append in batch {
            let state = append.state
            let gid = ByteBuffer(bytes: Array(append.append.gid.utf8))
            gids.append(gid)
            isNew.append(append.append.expectedVersion == nil)
            expected.append(Int64(clamping: append.append.expectedVersion ?? 0))
            expectedHashes.append(ByteBuffer(data: append.base?.lastHash ?? Data()))
            versions.append(Int64(clamping: state.version))
            lastHashes.append(ByteBuffer(data: append.rows.lastHash))
            statuses.append(Int16(clamping: state.status.rawValue))
            transTypes.append(state.transType)
            created.append(state.createTimeUs)
            dues.append(!state.status.isTerminal && state.nextDueUs > 0 ? state.nextDueUs : 0)
            states.append(ByteBuffer(bytes: try state.serializedBytes(options: options) as [UInt8]))
            finished.append(state.status.isTerminal)
            claimUntil.append(append.append.claimUntilUs)
            seqs += append.seqs
            streams += Array(repeating: gid, count: append.seqs.count)
            numbers += append.rows.numbers
            times += Array(repeating: append.rows.time, count: append.seqs.count)
            types += append.rows.types
            payloads += append.rows.payloads
            previousHashes += append.rows.previousHashes
            hashes += append.rows.hashes
        }
        let statement = BatchWriteStatement(
            gids: gids, isNew: isNew, expected: expected, expectedHashes: expectedHashes, versions: versions, lastHashes: lastHashes,
            statuses: statuses, transTypes: transTypes, created: created, dues: dues, states: states, finished: finished,
            claimUntil: claimUntil, node: configuration.node, now: Self.nowUs(), seqs: seqs, streams: streams, numbers: numbers,
            times: times, types: types, payloads: payloads, previousHashes: previousHashes, hashes: hashes,
            claimGids: claims.map { ByteBuffer(bytes: Array($0.gid.utf8)) }, claimUntils: claims.map(\.untilUs),
            writer: writer, batch: number, previousBatchHash: ByteBuffer(data: previous))
        var written = [ExactString: Bool](), claimed = Set<ExactString>(), batchHash: Data?
        for try await (kind, bytes, flag) in try await client.execute(statement, logger: logger) {
            switch kind {
            case BatchWriteStatement.writtenRow: written[String(decoding: bytes, as: UTF8.self).exact] = flag
            case BatchWriteStatement.claimedRow: claimed.insert(String(decoding: bytes, as: UTF8.self).exact)
            default: batchHash = bytes
            }
        }
        return (written, claimed, batchHash)
    }

    /// `conflicts` (lost to another writer, so their stored versions are not known here) with
    /// the versions stored now, read in one query; left unknown when that read fails.
    private func withActualVersions(_ conflicts: [StoreConflict]) async -> [StoreConflict] {
        var versions = [ExactString: UInt64]()
        do {
            let gids = conflicts.map { ByteBuffer(bytes: Array($0.gid.utf8)) }
            let rows = try await client.query(
                "SELECT gid, version FROM \(unescaped: prefix)transactions WHERE gid = ANY(\(gids)::bytea[])", logger: logger)
            for try await (gid, version) in rows.decode((Data, Int64).self) {
                versions[String(decoding: gid, as: UTF8.self).exact] = UInt64(exactly: version)
            }
        } catch {
            logger.debug("could not read the versions that won a conflict: \(Self.describe(error))")
        }
        return conflicts.map { StoreConflict(gid: $0.gid, expectedVersion: $0.expectedVersion, actualVersion: versions[$0.gid.exact]) }
    }

    /// What a failed write reports: a conflict as such, a duplicate new stream as a conflict.
    static func writeFailure(_ cause: any Error, item: PostgresWriteQueue.Item) -> any Error {
        if let conflict = cause as? StoreConflict { return conflict }
        if let psql = cause as? PSQLError, psql.serverInfo?[.sqlState] == "23505", case let .append(_, expectedVersion, _) = item.work {
            return StoreConflict(gid: item.gid, expectedVersion: expectedVersion, actualVersion: nil)
        }
        return describe(cause)
    }

    func remember(_ gid: String, state: TransactionState, lastHash: Data) {
        recent.withLock { recent in
            if recent.count >= Self.recentLimit { recent.removeAll() }
            recent[gid.exact] = (state, lastHash)
        }
    }

    func forget(_ gid: String) {
        recent.withLock { _ = $0.removeValue(forKey: gid.exact) }
    }
}

/// The batch's one statement, prepared once per connection (its tables are found through the
/// connection's search_path, the configured schema): each existing state row updated only at the
/// version and last hash its append was decided on, each new one inserted if still absent, the
/// event rows of exactly those appends, and the claims; a finished transaction is claimed by no
/// one any more; and, when it inserted events, the writer's next batch row. Rows: (`writtenRow`,
/// gid, whether its claim is held), (`claimedRow`, gid, true), (`batchRow`, the batch's hash, true).
struct BatchWriteStatement: PostgresPreparedStatement {
    static let writtenRow: Int16 = 0, claimedRow: Int16 = 1, batchRow: Int16 = 2

    static let sql = """
        WITH input AS (
          SELECT * FROM unnest($1::bytea[], $2::boolean[], $3::bigint[], $4::bytea[], $5::bigint[], $6::bytea[], $7::smallint[], $8::text[],
            $9::bigint[], $10::bigint[], $11::bytea[], $12::boolean[], $13::bigint[])
            AS i(gid, new, expected, expected_hash, version, last_hash, status, trans_type, create_time_us, next_due_us, state, finished,
              claim_until)),
        updated AS (
          UPDATE swiftdtm_transactions AS t SET version = i.version, last_hash = i.last_hash, status = i.status,
            next_due_us = i.next_due_us, state = i.state,
            claim_owner = CASE WHEN i.finished THEN NULL
              WHEN i.claim_until > 0 AND (t.claim_owner = $14::text OR t.claim_until_us < $15::bigint) THEN $14::text
              ELSE t.claim_owner END,
            claim_until_us = CASE WHEN i.finished THEN 0
              WHEN i.claim_until > 0 AND (t.claim_owner = $14::text OR t.claim_until_us < $15::bigint) THEN i.claim_until
              ELSE t.claim_until_us END
          FROM input AS i WHERE NOT i.new AND t.gid = i.gid AND t.version = i.expected AND t.last_hash = i.expected_hash
          RETURNING t.gid, i.claim_until > 0 AND t.claim_owner IS NOT DISTINCT FROM $14::text AS claimed),
        inserted AS (
          INSERT INTO swiftdtm_transactions AS t (gid, version, last_hash, status, trans_type, create_time_us, next_due_us, state,
            claim_owner, claim_until_us)
          SELECT gid, version, last_hash, status, trans_type, create_time_us, next_due_us, state,
            CASE WHEN claim_until > 0 THEN $14::text END, claim_until FROM input WHERE new
          ON CONFLICT (gid) DO NOTHING
          RETURNING t.gid, t.claim_until_us > 0 AS claimed),
        written AS (SELECT gid, claimed FROM updated UNION ALL SELECT gid, claimed FROM inserted),
        events AS (
          INSERT INTO swiftdtm_events (seq, stream, stream_seq, time_us, type, payload, previous_hash, hash)
          SELECT s, st, n, tm, ty, p, ph, h FROM unnest($16::bigint[], $17::bytea[], $18::bigint[], $19::bigint[],
            $20::text[], $21::bytea[], $22::bytea[], $23::bytea[]) AS e(s, st, n, tm, ty, p, ph, h)
            WHERE st IN (SELECT gid FROM written)
          RETURNING seq, hash),
        batch AS (
          INSERT INTO swiftdtm_batches (writer, n, previous_hash, hash, seqs)
          SELECT $26::text, $27::bigint, $28::bytea,
            sha256($28::bytea || string_agg(int8send(seq) || hash, ''::bytea ORDER BY seq)), array_agg(seq ORDER BY seq)
          FROM events HAVING count(*) > 0
          RETURNING hash),
        claimed AS (
          UPDATE swiftdtm_transactions AS t SET claim_owner = $14::text, claim_until_us = c.until
          FROM unnest($24::bytea[], $25::bigint[]) AS c(gid, until)
          WHERE t.gid = c.gid AND (t.claim_owner = $14::text OR t.claim_until_us < $15::bigint)
          RETURNING t.gid)
        SELECT 0::smallint, gid, claimed FROM written UNION ALL SELECT 1::smallint, gid, true FROM claimed
          UNION ALL SELECT 2::smallint, hash, true FROM batch
        """
    typealias Row = (Int16, Data, Bool)

    let gids: [ByteBuffer], isNew: [Bool], expected: [Int64], expectedHashes: [ByteBuffer], versions: [Int64], lastHashes: [ByteBuffer]
    let statuses: [Int16], transTypes: [String], created: [Int64], dues: [Int64], states: [ByteBuffer], finished: [Bool]
    let claimUntil: [Int64], node: String, now: Int64
    let seqs: [Int64], streams: [ByteBuffer], numbers: [Int64], times: [Int64], types: [String], payloads: [ByteBuffer]
    let previousHashes: [ByteBuffer], hashes: [ByteBuffer], claimGids: [ByteBuffer], claimUntils: [Int64]
    let writer: String, batch: Int64, previousBatchHash: ByteBuffer

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 28)
        bindings.append(gids)
        bindings.append(isNew)
        bindings.append(expected)
        bindings.append(expectedHashes)
        bindings.append(versions)
        bindings.append(lastHashes)
        bindings.append(statuses)
        bindings.append(transTypes)
        bindings.append(created)
        bindings.append(dues)
        bindings.append(states)
        bindings.append(finished)
        bindings.append(claimUntil)
        bindings.append(node)
        bindings.append(now)
        bindings.append(seqs)
        bindings.append(streams)
        bindings.append(numbers)
        bindings.append(times)
        bindings.append(types)
        bindings.append(payloads)
        bindings.append(previousHashes)
        bindings.append(hashes)
        bindings.append(claimGids)
        bindings.append(claimUntils)
        bindings.append(writer)
        bindings.append(batch)
        bindings.append(previousBatchHash)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}

/// `count` new event seqs, in one statement prepared once per connection.
struct NextSeqsStatement: PostgresPreparedStatement {
    static let sql = "SELECT nextval(pg_get_serial_sequence('swiftdtm_events', 'seq')) FROM generate_series(1, $1::integer)"
    typealias Row = Int64

    let count: Int32

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(count)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Int64.self)
    }
}
