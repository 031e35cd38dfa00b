import Metrics
import Projections

/// dtm's Prometheus metrics (WIRE §7), recorded through swift-metrics so any backend works;
/// dtmd exports them at `/api/metrics`.
public enum DtmMetrics {
    /// One gateway call: `dtm_server_process_total{type,api,status}` and
    /// `dtm_server_response_duration{type,api}` (type `grpc` or `http`).
    public static func recordCall(type: String, api: String, status: String, duration: Duration) {
        Counter(label: "dtm_server_process_total", dimensions: [("type", type), ("api", api), ("status", status)]).increment()
        Metrics.Timer(label: "dtm_server_response_duration", dimensions: [("type", type), ("api", api)]).record(duration: duration)
    }

    /// A transaction reached `status`: `dtm_transaction_process_total{model,status}`.
    static func transactionFinished(model: String, status: TransactionStatus) {
        Counter(label: "dtm_transaction_process_total", dimensions: [("model", model), ("status", status.dtmName)]).increment()
    }

    /// A round of a transaction took `duration`: `dtm_transaction_handled_duration{model}`.
    static func roundHandled(model: String, duration: Duration) {
        Metrics.Timer(label: "dtm_transaction_handled_duration", dimensions: [("model", model)]).record(duration: duration)
    }

    /// A branch call ended: `dtm_branch_process_total{model,branchid,branchtype,status}`.
    static func branchCalled(model: String, branchID: String, op: String, outcome: AttemptOutcome) {
        let status = switch outcome {
        case .success: "succeed"
        case .failure: "failed"
        case .ongoing: "ongoing"
        default: "error"
        }
        Counter(label: "dtm_branch_process_total", dimensions: [("model", model), ("branchid", branchID), ("branchtype", op), ("status", status)]).increment()
    }
}
