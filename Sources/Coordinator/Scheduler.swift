import Foundation
import Logging
import Projections
import ServiceLifecycle
import Synchronization

/// Drives every transaction that is due: retries, timeouts, QueryPrepared, and — after a restart —
/// every unfinished transaction, all found through the view's due-time index. It sleeps until the
/// earliest due time, but never longer than the cron interval, so work scheduled by other tasks
/// is found within that interval.
public struct Scheduler: Service {
    let coordinator: Coordinator
    let cronInterval: Duration
    let maxConcurrentDrives: Int
    let logger: Logger

    public init(coordinator: Coordinator, cronInterval: Duration, maxConcurrentDrives: Int = 256,
                logger: Logger = Logger(label: "swiftdtm.scheduler")) {
        self.coordinator = coordinator
        self.cronInterval = cronInterval
        self.maxConcurrentDrives = maxConcurrentDrives
        self.logger = logger
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await loop()
        } onGracefulShutdown: {}
    }

    private func loop() async throws {
        let running = RunningDrives()
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let now = coordinator.clock()
                let due: [(gid: String, dueUs: Int64)]
                do {
                    due = try coordinator.view.dueTransactions(atOrBefore: now, limit: maxConcurrentDrives)
                } catch {
                    logger.error("cannot read due transactions: \(error)")
                    due = []
                }
                for entry in due where running.count.load(ordering: .relaxed) < maxConcurrentDrives {
                    guard !coordinator.isDriving(entry.gid) else { continue }
                    running.count.add(1, ordering: .relaxed)
                    group.addTask {
                        defer { running.count.subtract(1, ordering: .relaxed) }
                        do {
                            try await coordinator.drive(entry.gid)
                        } catch {
                            logger.error("round failed: \(error)", metadata: ["gid": "\(entry.gid)"])
                        }
                    }
                }
                try? await Task.sleep(for: pause(after: due))
            }
            group.cancelAll()
        }
    }

    /// Until the earliest due time, at most the cron interval, at least 20 ms.
    private func pause(after due: [(gid: String, dueUs: Int64)]) -> Duration {
        if due.count == maxConcurrentDrives { return .milliseconds(20) }
        guard let nextDue = (try? coordinator.view.dueTransactions(atOrBefore: .max, limit: 1).first?.dueUs) ?? nil else {
            return cronInterval
        }
        let untilDue = Duration.microseconds(max(nextDue - coordinator.clock(), 0))
        return max(min(cronInterval, untilDue), .milliseconds(20))
    }
}

/// How many rounds the scheduler has started that have not ended.
private final class RunningDrives: Sendable {
    let count = Atomic<Int>(0)
}
