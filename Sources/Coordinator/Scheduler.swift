import EventLog
import DTMWire
import Foundation
import Logging
import Modes
import Projections
import ServiceLifecycle
import Synchronization

/// Runs every round that no client waits for: the first round of a submitted transaction, then
/// retries, timeouts, QueryPrepared, and — after a restart — every unfinished transaction, found
/// through the view's due-time index. It sleeps until the earliest due time, but never longer
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
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                await loop(starting: { gid in
                    running.count.add(1, ordering: .relaxed)
                    group.addTask {
                        defer { running.count.subtract(1, ordering: .relaxed) }
                        do {
                            try await coordinator.drive(gid)
                        } catch {
                            // One transaction that cannot be driven (say, its stored state is
                            // damaged) must not stop the rest: it waits a while, then is tried again.
                            logger.error("round failed; trying again in \(failurePause): \(RequestError(storage: error))", metadata: ["gid": "\(gid)"])
                            running.failed.withLock { $0[gid.exact] = .now + failurePause }
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

    private func loop(starting start: (String) -> Void, running: RunningRounds) async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let now = coordinator.clock()
            var free = maxConcurrentDrives - running.count.load(ordering: .relaxed)
            var started = Set<ExactString>()
            for gid in coordinator.roundsDueNow.take(upTo: free) where started.insert(gid.exact).inserted {
                start(gid)
                free -= 1
            }
            var due: [(gid: String, dueUs: Int64)] = []
            if free > 0 {
                do {
                    due = try coordinator.view.dueTransactions(atOrBefore: now, limit: maxConcurrentDrives)
                } catch {
                    logger.error("cannot read due transactions: \(error)")
                }
            }
            let pausing = running.failed.withLock { failed in
                failed = failed.filter { $0.value > .now }
                return Set(failed.keys)
            }
            for entry in due where free > 0 && !started.contains(entry.gid.exact) && !pausing.contains(entry.gid.exact)
                && !coordinator.isDriving(entry.gid) {
                start(entry.gid)
                free -= 1
            }
            await coordinator.roundsDueNow.signal.wait(
                timeout: pause(busy: free <= 0 || due.count == maxConcurrentDrives, skipping: pausing))
        }
    }

    /// Until the earliest due time (of a transaction not `skipping`), at most the cron interval,
    /// at least 20 ms.
    private func pause(busy: Bool, skipping: Set<ExactString>) -> Duration {
        if busy { return .milliseconds(20) }
        let upcoming = (try? coordinator.view.dueTransactions(atOrBefore: .max, limit: skipping.count + 1)) ?? []
        guard let nextDue = upcoming.first(where: { !skipping.contains($0.gid.exact) })?.dueUs else {
            return cronInterval
        }
        let untilDue = Duration.microseconds(max(Microseconds.adding(nextDue, to: -coordinator.clock()), 0))
        return max(min(cronInterval, untilDue), .milliseconds(20))
    }
}

/// How many rounds the scheduler has started that have not ended, and the transactions whose
/// last round failed, each with when to try it again.
private final class RunningRounds: Sendable {
    let count = Atomic<Int>(0)
    let failed = Mutex<[ExactString: ContinuousClock.Instant]>([:])
}
