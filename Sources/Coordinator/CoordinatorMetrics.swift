import DTMWire
import Foundation
import Metrics
import TransactionStore

/// SwiftDTM's own metrics of the coordinator (the `swiftdtm_` prefix keeps them apart from dtm's).
enum CoordinatorMetrics {
    /// `swiftdtm_rounds_in_flight`: rounds running now (started by requests or the scheduler).
    static let roundsInFlight = Meter(label: "swiftdtm_rounds_in_flight")

    /// `swiftdtm_due_backlog`: transactions due now that no round has taken yet (counted up to
    /// `Scheduler.backlogCountLimit`).
    static func dueBacklog(_ count: Int) {
        Gauge(label: "swiftdtm_due_backlog").record(count)
    }

    /// `swiftdtm_branch_call_duration{target}`: one branch call's latency, by the server it went
    /// to (`host:port` or the discovery target of a gRPC URL; `scheme://host:port` of an HTTP one).
    static func branchCalled(url: String, duration: Duration) {
        // Kept by URL, so the target is worked out once per URL, not once per call.
        branchCalls.metric([url]) {
            Metrics.Timer(label: "swiftdtm_branch_call_duration", dimensions: [("target", target(of: url))])
        }.record(duration: duration)
    }

    private static let branchCalls = MetricCache<Metrics.Timer>()

    static func target(of url: String) -> String {
        if isHTTPBranchURL(url) {
            guard let components = URLComponents(string: url), let host = components.host else { return "invalid" }
            return "\(components.scheme ?? "http")://\(host)" + (components.port.map { ":\($0)" } ?? "")
        }
        return (try? GrpcBranchURL(parsing: url).target) ?? "invalid"
    }
}
