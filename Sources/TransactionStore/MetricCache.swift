import Synchronization

/// Metric objects kept by their label values: making one (`Counter(label:dimensions:)`) asks the
/// metrics factory each time, which is a registry lookup, label arrays and an allocation per
/// use. On the hot path (every branch call, round and request) they are made once and reused.
/// At most `limit` entries are kept; past that, objects are made afresh (label values that keep
/// changing must not grow memory).
package final class MetricCache<Metric: AnyObject & Sendable>: Sendable {
    private let entries = Mutex<[[String]: Metric]>([:])
    private let limit: Int

    package init(limit: Int = 4096) {
        self.limit = limit
    }

    /// The metric for `values`, made by `make` on first use.
    package func metric(_ values: [String], _ make: () -> Metric) -> Metric {
        if let cached = entries.withLock({ $0[values] }) { return cached }
        let made = make()
        return entries.withLock { entries in
            if let cached = entries[values] { return cached }
            if entries.count < limit { entries[values] = made }
            return made
        }
    }
}
