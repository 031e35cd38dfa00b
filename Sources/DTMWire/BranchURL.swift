public import Foundation
public import GRPCNIOTransportHTTP2

/// Whether `url` names an HTTP branch (`http://` or `https://`); every other branch URL is gRPC.
public func isHTTPBranchURL(_ url: String) -> Bool {
    url.hasPrefix("http://") || url.hasPrefix("https://")
}

/// The host and port an HTTP branch URL is called at (443 for `https` without a port, else 80);
/// nil when it names no host. An IPv6 host comes in brackets, as URLComponents gives it.
public func httpHostAndPort(of components: URLComponents) -> (host: String, port: Int)? {
    guard let host = components.host, !host.isEmpty else { return nil }
    return (host, components.port ?? (components.scheme?.lowercased() == "https" ? 443 : 80))
}

/// A gRPC branch URL split the way dtm splits it: the last two path components are the method,
/// everything before them the server (`host:port`, or `etcd://hosts/key`, `discov://…`,
/// `k8s://namespace/service:port`).
public struct GrpcBranchURL: Sendable, Equatable {
    /// Where the service is: `host:port` or a target a `TargetResolver` turns into one.
    public let target: String
    /// `pkg.Svc` of `/pkg.Svc/Method`.
    public let service: String
    /// `Method` of `/pkg.Svc/Method`.
    public let method: String

    /// The target schemes a branch URL may use besides a plain `host:port`.
    public static let schemes = ["etcd", "discov", "k8s"]

    /// Parses `<server>/pkg.Svc/Method`; refuses unknown schemes and servers that are not
    /// `host:port`.
    public init(parsing url: String) throws {
        let query = url.firstIndex(of: "?")
        let path = query.map { String(url[..<$0]) } ?? url
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, !parts[parts.count - 1].isEmpty, !parts[parts.count - 2].isEmpty else {
            throw RequestError.invalidArgument("branch URL '\(url)' has no method path: expected <server>/pkg.Service/Method")
        }
        service = String(parts[parts.count - 2])
        method = String(parts[parts.count - 1])
        let server = parts.dropLast(2).joined(separator: "/")
        target = server + (query.map { String(url[$0...]) } ?? "")
        if let schemeEnd = server.range(of: "://") {
            let scheme = String(server[..<schemeEnd.lowerBound])
            guard Self.schemes.contains(scheme) else {
                throw RequestError.invalidArgument("branch URL '\(url)': unknown scheme '\(scheme)://'; expected host:port, etcd://, discov:// or k8s://")
            }
            guard server.count > schemeEnd.upperBound.utf16Offset(in: server), !server[schemeEnd.upperBound...].isEmpty else {
                throw RequestError.invalidArgument("branch URL '\(url)' names no server after '\(scheme)://'")
            }
            return
        }
        guard HostPort(server) != nil else {
            throw RequestError.invalidArgument("branch URL '\(url)': target '\(server)' is not host:port")
        }
    }
}

/// A `host:port` address.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    /// Parses `host:port` (`[v6]:port` too); nil when it is not one.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
              let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        let host = text[..<colon]
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : String(host)
        guard !self.host.isEmpty, !self.host.contains("/") else { return nil }
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The host is an IPv4 address written out (`10.1.2.3`), to dial as an address, not a name
    /// (TLS sends no SNI for an address).
    public var hostIsIPv4: Bool {
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil }
    }

    /// The host is an IPv6 address.
    public var hostIsIPv6: Bool { host.contains(":") }

    /// What to dial: an address written as an IP as that address (TLS then sends no SNI, which
    /// may not be an IP), a name through DNS.
    public var dialTarget: any ResolvableTarget {
        hostIsIPv4 ? .ipv4(address: host, port: port) : hostIsIPv6 ? .ipv6(address: host, port: port) : .dns(host: host, port: port)
    }
}

/// Turns a branch URL's server part into an address to call: a plain `host:port` as it is, the
/// schemed targets (`etcd://`, `discov://`, `k8s://`) through service discovery.
public protocol TargetResolver: Sendable {
    /// An address for `target`, chosen among the target's current addresses.
    func address(for target: String) async throws -> HostPort
    /// A call to `address` of `target` could not connect: skip it for a while.
    func reportFailure(_ address: HostPort, of target: String) async
}

/// Resolves only plain `host:port` targets (no service discovery configured).
public struct DirectTargetResolver: TargetResolver {
    public init() {}

    public func address(for target: String) async throws -> HostPort {
        guard let address = HostPort(target) else {
            throw RequestError.invalidArgument("target '\(target)' needs service discovery, which this server has not configured")
        }
        return address
    }

    public func reportFailure(_ address: HostPort, of target: String) async {}
}
