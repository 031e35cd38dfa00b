public import DTMWire
public import Projections
import Foundation

/// Keeps dtmd from calling itself: a branch, QueryPrepared, workflow callback or topic
/// subscriber URL that names one of dtmd's own ports on this machine (a loopback or local
/// address, `localhost`, the machine's name) would let any client make dtmd run its own API
/// (forceStop or Abort another client's transaction). Such URLs are refused when a request
/// brings them, with InvalidArgument naming the field, before anything is stored. Always on.
/// Discovery targets (`etcd://`, `discov://`, `k8s://`) are resolved only when called.
public struct SelfCallGuard: Sendable {
    /// dtmd's listening ports (gRPC and HTTP).
    public let ports: Set<Int>
    /// Names and addresses of this machine (lower-cased), besides the loopback ranges.
    public let localHosts: Set<String>

    public init(ports: Set<Int>, localHosts: Set<String>) {
        self.ports = ports
        self.localHosts = Set(localHosts.map { $0.lowercased() })
    }

    /// A guard that refuses nothing (tests whose branches run in process).
    public static let off = SelfCallGuard(ports: [], localHosts: [])

    /// Whether `host:port` is one of dtmd's own listeners.
    public func refuses(host: String, port: Int) -> Bool {
        guard ports.contains(port) else { return false }
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return localHosts.contains(name) || Self.isLoopbackOrUnspecified(name)
    }

    /// Throws InvalidArgument naming `field` when `url` points at dtmd itself.
    public func check(_ url: String, field: String) throws {
        guard let (host, port) = Self.hostAndPort(of: url), refuses(host: host, port: port) else { return }
        throw RequestError.invalidArgument(
            "\(field) '\(url)' points at dtmd itself (its own port \(port) on this machine): dtmd does not call itself")
    }

    /// Checks every URL a new transaction brings: its branches and its QueryPrepared (or
    /// workflow callback).
    public func check(_ created: TransactionCreated) throws {
        // QueryPrepared first: it is also stored as a branch (00), but the client sent it as this field.
        try check(created.queryPrepared, field: "QueryPrepared")
        for branch in created.branches { try check(branch.url, field: "branch \(branch.branchID) \(branch.op) URL") }
    }

    /// The host and port a branch URL is called at; nil for a discovery target or a URL that
    /// names none (those are refused elsewhere or resolved later).
    static func hostAndPort(of url: String) -> (host: String, port: Int)? {
        if isHTTPBranchURL(url) {
            guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty else { return nil }
            return (host, components.port ?? (components.scheme == "https" ? 443 : 80))
        }
        guard !url.isEmpty, let parsed = try? GrpcBranchURL(parsing: url), let address = HostPort(parsed.target) else { return nil }
        return (address.host, address.port)
    }

    /// 127.0.0.0/8, ::1, 0.0.0.0, ::, `localhost` and names under `.localhost`.
    static func isLoopbackOrUnspecified(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "::" || host == "0.0.0.0" { return true }
        if host.hasPrefix("::ffff:") { return isLoopbackOrUnspecified(String(host.dropFirst(7))) }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil } && octets.first == "127"
    }
}
