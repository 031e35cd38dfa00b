import DTMWire
import Foundation

/// A discovery target: `etcd://h1:2379,h2:2379/key?user=&password=` (or `discov://…`, the same),
/// or `k8s://namespace/service:port`.
public enum DiscoveryTarget: Equatable, Sendable {
    case etcd(endpoints: [String], key: String, user: String?, password: String?)
    case kubernetes(namespace: String, service: String, port: Int)

    /// Parses a target; throws InvalidArgument with what is wrong.
    public init(parsing text: String) throws {
        func invalid(_ reason: String) -> RequestError {
            .invalidArgument("target '\(text)': \(reason)")
        }
        guard let schemeEnd = text.range(of: "://") else { throw invalid("expected etcd://, discov:// or k8s://") }
        let scheme = text[..<schemeEnd.lowerBound]
        var rest = String(text[schemeEnd.upperBound...])
        var query = [String: String]()
        if let mark = rest.firstIndex(of: "?") {
            for item in URLComponents(string: "x:" + rest[mark...])?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            rest = String(rest[..<mark])
        }
        switch scheme {
        case "etcd", "discov":
            guard let slash = rest.firstIndex(of: "/") else { throw invalid("expected hosts/key") }
            let endpoints = rest[..<slash].split(separator: ",").map(String.init)
            let key = String(rest[rest.index(after: slash)...])
            guard !endpoints.isEmpty, endpoints.allSatisfy({ HostPort($0) != nil }) else { throw invalid("etcd endpoints must be host:port") }
            guard !key.isEmpty else { throw invalid("no key after the etcd endpoints") }
            self = .etcd(endpoints: endpoints, key: key, user: query["user"], password: query["password"])
        case "k8s":
            let parts = rest.split(separator: "/")
            guard parts.count == 2, let service = HostPort(String(parts[1])) else { throw invalid("expected k8s://namespace/service:port") }
            self = .kubernetes(namespace: String(parts[0]), service: service.host, port: service.port)
        default:
            throw invalid("unknown scheme '\(scheme)://'")
        }
    }
}
