import Metrics

/// SwiftDTM's own metrics of its stores (the `swiftdtm_` prefix keeps them apart from dtm's).
public enum StoreMetrics {
    /// One group commit of `store` (`lmdb`, `postgres`): `swiftdtm_log_appends_total` counts the
    /// events it appended, `swiftdtm_group_commit_events` records how many it held, and
    /// `swiftdtm_log_commit_duration` how long its write and commit (with the fsync) took.
    public static func groupCommitted(store: String, events: Int, duration: Duration) {
        let dimensions = [("store", store)]
        appends.metric([store]) { Counter(label: "swiftdtm_log_appends_total", dimensions: dimensions) }.increment(by: events)
        batchSizes.metric([store]) { Recorder(label: "swiftdtm_group_commit_events", dimensions: dimensions) }.record(events)
        commitTimes.metric([store]) { Metrics.Timer(label: "swiftdtm_log_commit_duration", dimensions: dimensions) }.record(duration: duration)
    }

    private static let appends = MetricCache<Counter>()
    private static let batchSizes = MetricCache<Recorder>()
    private static let commitTimes = MetricCache<Metrics.Timer>()
}
