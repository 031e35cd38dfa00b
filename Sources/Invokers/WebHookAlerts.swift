public import Foundation

/// dtm's alert about a branch that keeps failing: POSTed to AlertWebHook as
/// `{"gid","status","branch","error","retry_count"}`.
public struct BranchAlert: Sendable, Equatable {
    public var gid: String
    /// The transaction's global status (`submitted`, `aborting`, …).
    public var status: String
    /// The branch's URL.
    public var branch: String
    public var error: String
    public var retryCount: Int64

    public init(gid: String, status: String, branch: String, error: String, retryCount: Int64) {
        self.gid = gid
        self.status = status
        self.branch = branch
        self.error = error
        self.retryCount = retryCount
    }

    /// dtm's JSON body of the alert.
    public var body: Data {
        let object: [String: Any] = ["gid": gid, "status": status, "branch": branch, "error": error, "retry_count": retryCount]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }
}

/// Where alerts go.
public protocol AlertSender: Sendable {
    /// Sends `alert` and waits for the answer (which is ignored, as dtm ignores it).
    func send(_ alert: BranchAlert) async
}

/// dtm's AlertWebHook: each alert POSTed as JSON to one URL through the HTTP branch caller's
/// connection pool; the answer, or a failure to deliver, changes nothing (as in dtm).
public struct WebHookAlerts: AlertSender {
    let url: String
    let http: HttpBranchInvoker
    let timeout: Duration

    public init(url: String, http: HttpBranchInvoker, timeout: Duration) {
        self.url = url
        self.http = http
        self.timeout = timeout
    }

    public func send(_ alert: BranchAlert) async {
        _ = await http.post(alert.body, to: url, timeout: timeout)
    }
}
