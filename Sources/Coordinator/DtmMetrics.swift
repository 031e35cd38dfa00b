import Metrics
import TransactionStore
import Projections

/// dtm's Prometheus metrics (WIRE §7), with dtm's names, label names and label values, so the
/// dashboards and alerts of dtm users keep working; recorded through swift-metrics so any
/// backend works; dtmd exports them at `/api/metrics`.
public enum DtmMetrics {
    /// dtm's label value of a successful request, round or branch call.
    static let ok = "ok"
    /// dtm's label value of anything else.
    static let fail = "fail"

    /// One gateway call: `dtm_server_process_total{type,api,status}` and
    /// `dtm_server_response_duration{type,api}` (type `grpc` or `http`; api the last segment
    /// of the path, lower-cased, as dtm's `extractFromPath`).
    public static func recordCall(type: String, path: String, succeeded: Bool, duration: Duration) {
        let api = (path.split(separator: "/").last.map(String.init) ?? "").lowercased()
        let status = succeeded ? ok : fail
        calls.metric([type, api, status]) {
            Counter(label: "dtm_server_process_total", dimensions: [("type", type), ("api", api), ("status", status)])
        }.increment()
        responseTimes.metric([type, api]) {
            Metrics.Timer(label: "dtm_server_response_duration", dimensions: [("type", type), ("api", api)])
        }.record(duration: duration)
    }

    private static let calls = MetricCache<Counter>()
    private static let responseTimes = MetricCache<Metrics.Timer>()
    private static let rounds = MetricCache<Counter>()
    private static let handledTimes = MetricCache<Metrics.Timer>()
    private static let branches = MetricCache<Counter>()

    /// A processing round of a transaction ended (one a request or the scheduler started):
    /// `dtm_transaction_process_total{model,status}` (`ok` unless a branch answered an error or
    /// ONGOING, the round failed, or the transaction ended failed) and
    /// `dtm_transaction_handled_duration{model}`, the time since the transaction was created.
    static func roundEnded(model: String, succeeded: Bool, sinceCreation: Duration) {
        let status = succeeded ? ok : fail
        rounds.metric([model, status]) {
            Counter(label: "dtm_transaction_process_total", dimensions: [("model", model), ("status", status)])
        }.increment()
        handledTimes.metric([model]) {
            Metrics.Timer(label: "dtm_transaction_handled_duration", dimensions: [("model", model)])
        }.record(duration: sinceCreation)
    }

    /// A branch call ended: `dtm_branch_process_total{model,branchid,branchtype,status}`
    /// (branchtype is the op; `ok` for SUCCESS only).
    static func branchCalled(model: String, branchID: String, op: String, outcome: AttemptOutcome) {
        let status = outcome == .success ? ok : fail
        branches.metric([model, branchID, op, status]) {
            Counter(label: "dtm_branch_process_total", dimensions: [("model", model), ("branchid", branchID), ("branchtype", op), ("status", status)])
        }.increment()
    }

    /// `dtm_server_info` = 1, with dtm's two labels naming the HTTP and gRPC libraries.
    public static func recordServerInfo(http: String, grpc: String) {
        Gauge(label: "dtm_server_info", dimensions: [("gin_version", http), ("grpc_version", grpc)]).record(1)
    }
}
