import ByteIdentity
import DTMWire
import Foundation
public import Logging
import Modes
import Projections
import TransactionStore
public import ServiceLifecycle
import Synchronization

/// Runs every round that no client waits for: the first round of a submitted transaction, then
/// retries, timeouts, QueryPrepared, and — after a restart — every unfinished transaction, claimed
/// from the store's due work with a lease (released when the round ends; a transaction whose
/// round failed stays claimed for `failurePause`). It sleeps until the earliest due time, but never longer
/// than the cron interval, and wakes at once when a client request makes a transaction due.
///
/// Every round runs in the scheduler's task group. On graceful shutdown it stops starting
/// rounds, lets the running ones finish for up to `drainLimit`, then cancels what is left; the
/// transactions stay due in the log and resume on the next start.
public struct Scheduler: Service {
    let coordinator: Coordinator
    let cronInterval: Duration
    let drainLimit: Duration
    /// How long a transaction whose round failed waits before the next one.
    let failurePause: Duration
    let maxConcurrentDrives: Int
    let logger: Logger

    public init(coordinator: Coordinator, cronInterval: Duration, drainLimit: Duration = .seconds(5),
                failurePause: Duration = .seconds(60), maxConcurrentDrives: Int = 256,
                logger: Logger = Logger(label: "swiftdtm.scheduler")) {
        self.coordinator = coordinator
        self.cronInterval = cronInterval
        self.drainLimit = drainLimit
        self.failurePause = failurePause
        self.maxConcurrentDrives = maxConcurrentDrives
        self.logger = logger
    }

    public func run() async throws {
        let running = RunningRounds()
        let store = coordinator.store
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                await loop(starting: { gid, claimed in
                    running.count.add(1, ordering: .relaxed)
                    group.addTask {
                        defer { running.count.subtract(1, ordering: .relaxed) }
                        do {
                            // Still due? A round a client started may have rescheduled it meanwhile.
                            try await coordinator.driveIfDue(gid, claimed: claimed)
                            await store.release(gid, holdFor: .zero)
                        } catch {
                            // One transaction that cannot be driven (say, its stored state is
                            // damaged) must not stop the rest: it waits a while, then is tried again.
                            logger.error("round failed; trying again in \(failurePause): \(RequestError(error))", metadata: ["gid": "\(gid)"])
                            await store.release(gid, holdFor: failurePause)
                        }
                    }
                }, running: running)
            } onGracefulShutdown: {
                coordinator.roundsDueNow.close()
            }
            let left = running.count.load(ordering: .relaxed)
            guard left > 0 else { return }
            logger.info("waiting for \(left) running round(s) to finish", metadata: ["limit": "\(drainLimit)"])
            let deadline = ContinuousClock.now + drainLimit
            while running.count.load(ordering: .relaxed) > 0, ContinuousClock.now < deadline, !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let unfinished = running.count.load(ordering: .relaxed)
            if unfinished > 0 {
                logger.warning("cancelling \(unfinished) round(s) still running after \(drainLimit); they resume on the next start")
                group.cancelAll()
            }
        }
    }

    /// Starts rounds through `start` (with whether the store's claim on the gid is already taken).
    private func loop(starting start: (_ gid: String, _ claimed: Bool) -> Void, running: RunningRounds) async {
        let store = coordinator.store
        var backlogCountedAt = ContinuousClock.now - Self.backlogCountInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = coordinator.clock.now()
            if ContinuousClock.now - backlogCountedAt >= Self.backlogCountInterval {
                backlogCountedAt = .now
                if let backlog = try? await store.dueCount(atOrBefore: now, upTo: Self.backlogCountLimit) {
                    CoordinatorMetrics.dueBacklog(backlog)
                }
            }
            var free = maxConcurrentDrives - running.count.load(ordering: .relaxed)
            var started = Set<ExactString>()
            for gid in coordinator.roundsDueNow.take(upTo: free) where started.insert(gid.exact).inserted {
                start(gid, false)
                free -= 1
            }
            var claimed: [String] = []
            let asked = free
            if asked > 0 {
                do {
                    claimed = try await store.claimDue(atOrBefore: now, limit: asked, lease: coordinator.roundLease)
                } catch {
                    logger.error("cannot read due transactions: \(error)")
                }
            }
            for gid in claimed {
                // Already running: a round submitted just now, or one a client waits for. The claim
                // is this node's, and that round's end releases it (releasing it here would hand
                // the transaction to another node while the round runs).
                if started.contains(gid.exact) || coordinator.isDriving(gid) { continue }
                start(gid, true)
                free -= 1
            }
            await coordinator.roundsDueNow.signal.wait(timeout: await pause(busy: free <= 0 || (asked > 0 && claimed.count == asked)))
        }
    }

    /// How often the due backlog is counted, and the most it counts.
    static let backlogCountInterval: Duration = .seconds(1)
    static let backlogCountLimit = 10_000

    /// Until the earliest due time of an unclaimed transaction, at most the cron interval, at least 20 ms.
    private func pause(busy: Bool) async -> Duration {
        if busy { return .milliseconds(20) }
        guard let nextDue = (try? await coordinator.store.nextDueTime()) ?? nil else { return cronInterval }
        let untilDue = Duration.microseconds(max(Microseconds.adding(nextDue, to: -coordinator.clock.now()), 0))
        return max(min(cronInterval, untilDue), .milliseconds(20))
    }
}

/// How many rounds the scheduler has started that have not ended.
private final class RunningRounds: Sendable {
    let count = Atomic<Int>(0)
}
