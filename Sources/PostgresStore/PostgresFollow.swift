import Projections

/// Follows the events table in global order by polling. An append's seqs are taken just before
/// its statement, so a later seq can commit first: a gap is waited for (an append still
/// committing) for up to `gapPatience`, then passed (an append that lost its compare-and-append
/// or was rolled back: its seqs never commit). Every node's statements end within
/// `PostgresStoreConfiguration.writeTimeout`, so a gap still open after that never fills.
struct PostgresFollow: AsyncSequence {
    typealias Element = RecordedEvent

    static let interval: Duration = .milliseconds(200)
    static let gapPatience: Duration = PostgresStoreConfiguration.writeTimeout + .seconds(2)

    let store: PostgresTransactionStore
    let after: Int64

    func makeAsyncIterator() -> Iterator {
        Iterator(store: store, last: after)
    }

    struct Iterator: AsyncIteratorProtocol {
        let store: PostgresTransactionStore
        var last: Int64
        var buffered: [RecordedEvent] = []
        /// Since when the next seq has been missing while later ones are there.
        var gapSince: ContinuousClock.Instant?

        mutating func next() async throws -> RecordedEvent? {
            while buffered.isEmpty {
                try Task.checkCancellation()
                let found = try await store.events(after: last, limit: 500)
                var ready = [RecordedEvent]()
                var expected = last + 1
                for event in found {
                    let seq = Int64(clamping: event.seq)
                    if seq != expected {
                        let since = gapSince ?? .now
                        gapSince = since
                        guard ContinuousClock.now - since >= PostgresFollow.gapPatience else { break }
                    }
                    gapSince = nil
                    ready.append(event)
                    expected = seq + 1
                }
                if ready.isEmpty {
                    try await Task.sleep(for: PostgresFollow.interval)
                    continue
                }
                last = Int64(clamping: ready[ready.count - 1].seq)
                buffered = ready.reversed()
            }
            return buffered.popLast()
        }
    }
}
