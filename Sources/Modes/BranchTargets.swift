import DTMWire
public import Projections
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where dtmd may send a call (a branch, QueryPrepared, a workflow callback, a topic
/// subscriber), checked when a request brings the URL, before anything is stored
/// (InvalidArgument / 400 naming the field), and again at every call with the host:port it is
/// about to reach: a discovery target once resolved (`etcd://`, `discov://`, `k8s://`), a DNS
/// name with the addresses it resolves to when the rules need them (`needsAddresses`).
///
/// - Always: never dtmd itself. A URL naming one of dtmd's ports on a loopback or local address,
///   `localhost` or the machine's name would let any client make dtmd run its own API
///   (forceStop or Abort another client's transaction).
/// - `BranchTargets.Deny` (CIDRs and host patterns such as `*.internal`) refuses what matches;
///   `BranchTargets.Allow`, when not empty, refuses what matches none of its entries. Patterns
///   match names; CIDRs match addresses: an IP written in the URL, the address a discovery target
///   resolves to, or (at call time) the addresses a DNS name resolves to.
public struct BranchTargets: Sendable {
    /// dtmd's listening ports (gRPC and HTTP).
    public let ports: Set<Int>
    /// Names and addresses of this machine (lower-cased), besides the loopback ranges.
    public let localHosts: Set<String>
    let allow: [TargetRule]
    let deny: [TargetRule]

    /// Rules for dtmd on `ports` of this machine (`localHosts`), with the configured allow and
    /// deny lists; throws naming an entry that is neither a CIDR nor a host pattern.
    public init(ports: Set<Int>, localHosts: Set<String>, allow: [String] = [], deny: [String] = []) throws {
        self.ports = ports
        self.localHosts = Set(localHosts.map { $0.lowercased() })
        self.allow = try allow.map { try TargetRule($0, list: "BranchTargets.Allow") }
        self.deny = try deny.map { try TargetRule($0, list: "BranchTargets.Deny") }
    }

    /// Rules that refuse nothing (tests whose branches run in process).
    public static let off = BranchTargets(ports: [], localHosts: [], allowRules: [], denyRules: [])

    private init(ports: Set<Int>, localHosts: Set<String>, allowRules: [TargetRule], denyRules: [TargetRule]) {
        (self.ports, self.localHosts, self.allow, self.deny) = (ports, localHosts, allowRules, denyRules)
    }

    /// Why a call to `host:port` is refused, judged on what is known without resolving a name:
    /// the name itself, or the address written. A name that only its addresses can decide (a
    /// CIDR list, one of dtmd's ports) passes here; `needsAddresses` says so, and
    /// `refusal(host:port:addresses:)` decides once it is resolved, at call time.
    public func refusal(host: String, port: Int) -> String? {
        verdict(Self.normalized(host), port: port, addresses: nil)
    }

    /// Whether `host` is a name whose addresses decide (checked at call time, once resolved): a
    /// name on one of dtmd's ports (it could be dtmd under another name), or with a CIDR in Deny,
    /// or with an Allow list whose patterns do not name it.
    public func needsAddresses(host: String, port: Int) -> Bool {
        let name = Self.normalized(host)
        guard TargetRule.addressBytes(name) == nil else { return false }
        return ports.contains(port) || deny.contains(where: \.isNetwork) || (!allow.isEmpty && !allow.contains { $0.matches(name) })
    }

    /// Why a call to the name `host` on `port`, which resolves to `addresses`, is refused: dtmd
    /// itself when any address is this machine's on one of dtmd's ports; Deny when the name or
    /// any address matches it; Allow when the name matches no entry and some address matches none.
    public func refusal(host: String, port: Int, addresses: [String]) -> String? {
        verdict(Self.normalized(host), port: port, addresses: addresses.map(Self.normalized))
    }

    /// The rules, for `name` with the `addresses` it resolves to (nil: not resolved).
    private func verdict(_ name: String, port: Int, addresses: [String]?) -> String? {
        let isAddress = TargetRule.addressBytes(name) != nil
        let resolved = isAddress ? [] : (addresses ?? [])
        if ports.contains(port) {
            if isLocal(name) { return "points at dtmd itself (its own port \(port) on this machine): dtmd does not call itself" }
            if let local = resolved.first(where: isLocal) {
                return "resolves to \(local), dtmd itself (its own port \(port) on this machine): dtmd does not call itself"
            }
        }
        if let rule = deny.first(where: { $0.matches(name) }) { return "is refused by BranchTargets.Deny (\(rule.text))" }
        for address in resolved {
            if let rule = deny.first(where: { $0.matches(address) }) {
                return "resolves to \(address), which BranchTargets.Deny refuses (\(rule.text))"
            }
        }
        guard !allow.isEmpty, !allow.contains(where: { $0.matches(name) }) else { return nil }
        if isAddress { return "matches no entry of BranchTargets.Allow" }
        guard addresses != nil else {
            // Not resolved yet: only a CIDR of Allow could still take it, at call time.
            return allow.contains(where: \.isNetwork) ? nil : "matches no entry of BranchTargets.Allow"
        }
        guard !resolved.isEmpty else { return "resolves to no address, so it matches no entry of BranchTargets.Allow" }
        if let outside = resolved.first(where: { address in !allow.contains { $0.matches(address) } }) {
            return "resolves to \(outside), which matches no entry of BranchTargets.Allow"
        }
        return nil
    }

    /// This machine: a loopback or unspecified address, or one of its names and addresses.
    private func isLocal(_ host: String) -> Bool {
        localHosts.contains(host) || Self.isLoopbackOrUnspecified(host)
    }

    /// Lower case, without IPv6 brackets.
    private static func normalized(_ host: String) -> String {
        host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    }

    /// Whether a call on `port` can be refused at all: with lists, any; without, only one on
    /// dtmd's own ports. Calls it cannot are let through without looking at their host.
    public func mayRefuse(port: Int) -> Bool {
        !allow.isEmpty || !deny.isEmpty || ports.contains(port)
    }

    /// Throws InvalidArgument naming `field` when the rules refuse `url`.
    public func check(_ url: String, field: String) throws {
        // Without lists, only a URL that names one of dtmd's ports can be refused: most URLs are
        // passed without being parsed (unless dtmd itself listens on a default port).
        if !mayRefuse(port: 80) && !mayRefuse(port: 443) && !ports.contains(where: { url.contains(":\($0)") }) { return }
        guard let (host, port) = Self.hostAndPort(of: url), let reason = refusal(host: host, port: port) else { return }
        throw RequestError.invalidArgument("\(field) '\(url)' \(reason)")
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
        if isHTTPBranchURL(url) { return URLComponents(string: url).flatMap(httpHostAndPort) }
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

/// One entry of BranchTargets.Allow or Deny: a CIDR (`10.0.0.0/8`, `fd00::/8`), an exact host
/// (`busi.example.com`, `10.1.2.3`), or a pattern `*.example.com` (any name below it).
struct TargetRule: Sendable {
    let text: String
    private let kind: Kind

    private enum Kind: Sendable {
        case network(address: [UInt8], prefixBits: Int)
        case exact(String)
        case suffix(String)
    }

    init(_ text: String, list: String) throws {
        self.text = text
        let entry = text.lowercased().trimmingCharacters(in: .whitespaces)
        if let slash = entry.firstIndex(of: "/") {
            guard let address = TargetRule.addressBytes(String(entry[..<slash])), let bits = Int(entry[entry.index(after: slash)...]),
                  (0...(address.count * 8)).contains(bits) else {
                throw RequestError.invalidArgument("\(list) entry '\(text)' is not a CIDR (address/prefix length)")
            }
            kind = .network(address: address, prefixBits: bits)
        } else if entry.hasPrefix("*.") && entry.count > 2 {
            kind = .suffix(String(entry.dropFirst(1)))
        } else if !entry.isEmpty && !entry.contains("*") {
            kind = .exact(entry)
        } else {
            throw RequestError.invalidArgument("\(list) entry '\(text)' is not a CIDR, a host or a pattern *.domain")
        }
    }

    /// Whether this is a CIDR (it matches addresses, not names).
    var isNetwork: Bool {
        if case .network = kind { return true }
        return false
    }

    /// Whether `host` (lower-cased: a name or an IP address) matches.
    func matches(_ host: String) -> Bool {
        switch kind {
        case let .exact(name): return host == name
        case let .suffix(suffix): return host.hasSuffix(suffix)
        case let .network(network, bits):
            guard let address = TargetRule.addressBytes(host), address.count == network.count else { return false }
            for bit in 0..<bits where (address[bit / 8] ^ network[bit / 8]) & (0x80 >> UInt8(bit % 8)) != 0 { return false }
            return true
        }
    }

    /// The bytes of an IPv4 or IPv6 address written as text; nil for a name.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address: no way around an IPv4 rule.
        if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return Array(bytes.suffix(4)) }
        return bytes
    }
}

/// A list of CIDRs, hosts and `*.domain` patterns (dtmd's `BranchTLS.Grpc`): which addresses it
/// names.
public struct TargetList: Sendable {
    let rules: [TargetRule]

    /// Throws naming `list` and the entry that is neither a CIDR, a host nor a pattern.
    public init(_ entries: [String], list: String) throws {
        rules = try entries.map { try TargetRule($0, list: list) }
    }

    /// Whether `host` (a name or an address) matches an entry.
    public func matches(_ host: String) -> Bool {
        let name = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return rules.contains { $0.matches(name) }
    }
}
