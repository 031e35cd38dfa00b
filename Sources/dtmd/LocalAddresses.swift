import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The names and addresses this machine answers to: its host name and every interface
/// address (what the self-call guard refuses with dtmd's ports, besides the loopback ranges).
enum LocalAddresses {
    static func names() -> Set<String> {
        var names: Set<String> = [ProcessInfo.processInfo.hostName.lowercased()]
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&interfaces) == 0, let first = interfaces else { return names }
        defer { freeifaddrs(interfaces) }
        for interface in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let address = interface.pointee.ifa_addr else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            if getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                // A link-local IPv6 address comes with its zone (`fe80::1%eth0`): keep the address.
                let text = String(cString: host)
                names.insert(String(text.split(separator: "%").first ?? Substring(text)).lowercased())
            }
        }
        return names
    }
}
