import Foundation
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Turns a host name into the addresses a connection to it may reach (as text: `10.1.2.3`,
/// `fd00::1`), for rules that judge addresses rather than names.
public protocol NameResolver: Sendable {
    func addresses(of host: String) async throws -> [String]
}

/// A name that did not resolve.
public struct NameResolutionError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }
}

/// The system's resolver (`getaddrinfo`: /etc/hosts, then DNS), run on NIO's blocking-I/O
/// thread pool, with each answer kept for `cacheLifetime` so that a busy branch does not cost a
/// DNS query per call.
public final class SystemNameResolver: NameResolver {
    private let cacheLifetime: Duration
    private let cache = Mutex<[String: (addresses: [String], until: ContinuousClock.Instant)]>([:])
    /// Cached names at most; past it the cache starts again.
    private let cacheLimit = 1024

    public init(cacheLifetime: Duration = .seconds(5)) {
        self.cacheLifetime = cacheLifetime
    }

    public func addresses(of host: String) async throws -> [String] {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[host] }), cached.until > now { return cached.addresses }
        let addresses = try await NIOThreadPool.singleton.runIfActive { try Self.lookUp(host) }
        cache.withLock { cache in
            if cache.count >= cacheLimit { cache.removeAll() }
            cache[host] = (addresses, now + cacheLifetime)
        }
        return addresses
    }

    /// Every distinct address `getaddrinfo` gives for `host` (TCP), in its order.
    static func lookUp(_ host: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            throw NameResolutionError(description: "'\(host)' does not resolve: \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var next = list
        while let entry = next {
            if let text = Self.text(of: entry.pointee), !addresses.contains(text) { addresses.append(text) }
            next = entry.pointee.ai_next
        }
        return addresses
    }

    private static func text(of entry: addrinfo) -> String? {
        guard let address = entry.ai_addr else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let written: UnsafePointer<CChar>?
        switch entry.ai_family {
        case AF_INET:
            written = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                withUnsafePointer(to: v4.pointee.sin_addr) { inet_ntop(AF_INET, $0, &buffer, socklen_t(buffer.count)) }
            }
        case AF_INET6:
            written = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                withUnsafePointer(to: v6.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &buffer, socklen_t(buffer.count)) }
            }
        default:
            return nil
        }
        guard written != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
