/// One holder at a time per gid: a transaction is driven by one task, and client requests for it
/// (submit, abort, register) never interleave with a round of its processing.
actor GidLocks {
    private var held: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// Runs `body` while holding the lock of `gid`.
    func withLock<T: Sendable>(_ gid: String, _ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire(gid)
        defer { release(gid) }
        return try await body()
    }

    /// Whether some task holds the lock of `gid` now.
    func isHeld(_ gid: String) -> Bool { held.contains(gid) }

    private func acquire(_ gid: String) async {
        if held.insert(gid).inserted { return }
        await withCheckedContinuation { waiters[gid, default: []].append($0) }
    }

    private func release(_ gid: String) {
        if var queue = waiters[gid], !queue.isEmpty {
            // Hand the lock straight to the next waiter: `held` keeps the gid.
            let next = queue.removeFirst()
            waiters[gid] = queue.isEmpty ? nil : queue
            next.resume()
        } else {
            held.remove(gid)
        }
    }
}
