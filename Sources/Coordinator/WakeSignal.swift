import Synchronization

/// Wakes one waiting task early. A ring while nobody waits is kept (once) for the next wait.
final class WakeSignal: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Wakes the waiting task, or the next one to wait.
    func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns once rung, once `timeout` has passed, or when the task is cancelled. One task
    /// waits at a time.
    func wait(timeout: Duration) async {
        if state.withLock({ state in defer { state.rung = false }; return state.rung }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForRing() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

/// Transactions a client request made due now, handed to the scheduler so their first round
/// starts at once instead of at its next look at the due index. Only a shortcut: every one of
/// them is also in the due index, so nothing is lost when the scheduler is busy or stopping.
final class RoundsDueNow: Sendable {
    private struct State {
        var gids: [String] = []
        var closed = false
    }

    private let state = Mutex(State())
    let signal = WakeSignal()

    /// At most this many gids wait; past it the due index alone finds the rest.
    static let capacity = 65_536

    /// Asks for a round of `gid` now; ignored once closed (shutdown) or full.
    func add(_ gid: String) {
        let added = state.withLock { state -> Bool in
            guard !state.closed, state.gids.count < Self.capacity else { return false }
            state.gids.append(gid)
            return true
        }
        if added { signal.ring() }
    }

    /// Takes up to `limit` gids, oldest first; the rest are dropped (the due index has them).
    func take(upTo limit: Int) -> [String] {
        state.withLock { state in
            defer { state.gids.removeAll(keepingCapacity: true) }
            return Array(state.gids.prefix(max(limit, 0)))
        }
    }

    /// Stops accepting gids and wakes the scheduler.
    func close() {
        state.withLock { $0.closed = true }
        signal.ring()
    }
}
