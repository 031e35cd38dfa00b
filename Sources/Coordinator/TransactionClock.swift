import Foundation
import Modes
import Synchronization

/// Wall-clock time as dtm keeps it: microseconds since 1970. The coordinator and the scheduler
/// take it from here (creation times, timeouts, retry due times, decision times), so tests can
/// move time instead of sleeping.
public protocol TransactionClock: Sendable {
    /// Now, in µs since 1970.
    func now() -> Int64
}

/// The system's wall clock.
public struct SystemClock: TransactionClock {
    public init() {}

    public func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// A clock that moves only when told to: for tests of retries and timeouts that must not wait
/// for real time to pass.
public final class ManualClock: TransactionClock {
    private let current: Mutex<Int64>

    /// Starts at `start` µs since 1970 (by default, the system clock's now).
    public init(start: Int64 = SystemClock().now()) {
        current = Mutex(start)
    }

    public func now() -> Int64 { current.withLock { $0 } }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let microseconds = Microseconds.adding(Microseconds.of(seconds: seconds), to: attoseconds / 1_000_000_000_000)
        current.withLock { $0 = Microseconds.adding($0, to: microseconds) }
    }
}
