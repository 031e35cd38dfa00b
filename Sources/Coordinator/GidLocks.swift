import ByteIdentity
import Synchronization

/// One holder at a time per gid: a transaction is driven by one task, and client requests for it
/// (submit, abort, register) never interleave with a round of its processing. A free lock is
/// taken without suspending; waiters queue in order. Gids are told apart by their exact bytes.
final class GidLocks: Sendable {
    /// Held gids, each with the tasks waiting for it.
    private let held = Mutex<[ExactString: [CheckedContinuation<Void, Never>]]>([:])

    /// Runs `body` while holding the lock of `gid`.
    func withLock<T>(_ gid: String, _ body: () async throws -> T) async rethrows -> T {
        let gid = gid.exact
        await acquire(gid)
        defer { release(gid) }
        return try await body()
    }

    /// Whether some task holds the lock of `gid` now.
    func isHeld(_ gid: String) -> Bool { held.withLock { $0[gid.exact] != nil } }

    private func acquire(_ gid: ExactString) async {
        let taken = held.withLock { held in
            guard held[gid] == nil else { return false }
            held[gid] = []
            return true
        }
        if taken { return }
        await withCheckedContinuation { continuation in
            let takenNow = held.withLock { held in
                guard held[gid] != nil else {
                    held[gid] = []
                    return true
                }
                held[gid]?.append(continuation)
                return false
            }
            if takenNow { continuation.resume() }
        }
    }

    private func release(_ gid: ExactString) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard var waiting = held[gid], !waiting.isEmpty else {
                held[gid] = nil
                return nil
            }
            // Hand the lock straight to the next waiter: the gid stays held.
            let next = waiting.removeFirst()
            held[gid] = waiting
            return next
        }
        next?.resume()
    }
}
