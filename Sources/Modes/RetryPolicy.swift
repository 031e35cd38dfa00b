public import Projections

/// When to try a transaction again after a round of branch calls. Pure.
///
/// dtm's schedule: the base is the transaction's RetryInterval; an error (or a FAILURE that is
/// retried) doubles the interval for the next time, ONGOING keeps it, and a round with any success
/// starts again from the base. The interval never grows past an hour (or the base, if larger).
public enum RetryPolicy {
    /// dtm's retry count of a transaction whose retry interval has grown to `interval` from `base`
    /// (its RetryInterval): ⌊log2(interval / base)⌋, what AlertRetryLimit is compared with.
    public static func retryCount(interval: Int64, base: Int64) -> Int64 {
        guard base > 0, interval > base else { return 0 }
        var count: Int64 = 0
        var ratio = interval / base
        while ratio > 1 {
            ratio /= 2
            count += 1
        }
        return count
    }

    /// The calls of a round that count as errors for dtm's alerts: an answer that is neither
    /// success, ONGOING nor a final FAILURE, of a branch that is not the mode's bookkeeping.
    public static func alerting(
        _ outcomes: [(branch: BranchRef, outcome: AttemptOutcome)], mode: any TransactionMode.Type
    ) -> [BranchRef] {
        outcomes.filter { entry in
            switch entry.outcome {
            case .success, .ongoing: return false
            case .failure: return !mode.failureIsFinal(op: entry.branch.op)
            case .error, .unspecified, .UNRECOGNIZED: return true
            }
        }.map(\.branch)
    }

    /// The longest interval doubling reaches, in seconds, unless the base is longer.
    public static let maximumInterval: Int64 = 3600

    /// nil when every outcome is resolved (success, or a FAILURE the mode treats as final): the
    /// coordinator decides again at once. Otherwise the next attempt's schedule.
    public static func afterRound(
        _ outcomes: [(branch: BranchRef, outcome: AttemptOutcome)], state: TransactionState,
        failureIsFinal: (String) -> Bool, now: Int64
    ) -> NextRetryScheduled? {
        let unresolved = outcomes.filter { entry in
            switch entry.outcome {
            case .success: return false
            case .failure: return !failureIsFinal(entry.branch.op)
            case .ongoing, .error, .unspecified, .UNRECOGNIZED: return true
            }
        }
        guard !unresolved.isEmpty else { return nil }
        let base = max(state.options.retryInterval, 1)
        let current = state.retryInterval > 0 ? state.retryInterval : base
        let interval = outcomes.contains { $0.outcome == .success } ? base : current
        let backingOff = unresolved.contains { $0.outcome != .ongoing }
        // Stored intervals may be anything an older build wrote: doubling saturates.
        let doubled = interval > Int64.max / 2 ? Int64.max : interval * 2
        return NextRetryScheduled.with {
            $0.dueUs = Microseconds.after(seconds: interval, from: now)
            $0.retryInterval = backingOff ? min(doubled, max(base, maximumInterval)) : interval
        }
    }
}
