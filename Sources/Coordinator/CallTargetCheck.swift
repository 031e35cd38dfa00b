public import Invokers
public import Modes

/// dtmd's branch-target rules (`BranchTargets`) at call time, for the host:port a call is about
/// to reach (a URL's, or what a discovery target resolved to): a name is resolved when only its
/// addresses can decide — a CIDR list, or one of dtmd's own ports (another name for dtmd). A
/// name that does not resolve is refused, as its call could not be made anyway.
///
/// A resolved name's checked addresses go with the verdict, and the invokers dial those rather
/// than looking the name up again, so a DNS server that answers the check and the connection
/// differently (rebinding) gains nothing. (`https://` and gRPC-over-TLS calls still dial the
/// name: the certificate is checked against it.)
public struct CallTargetCheck: Sendable {
    let targets: BranchTargets
    let names: any NameResolver

    public init(targets: BranchTargets, names: any NameResolver = SystemNameResolver()) {
        self.targets = targets
        self.names = names
    }

    /// Whether a call to `host:port` may be made; for a name that had to be resolved, the
    /// addresses that were checked, for the call to go to.
    public func verdict(host: String, port: Int) async -> TargetVerdict {
        // The common case, on every call: no lists, and not one of dtmd's ports.
        guard targets.mayRefuse(port: port) else { return .allowed(addresses: []) }
        guard targets.needsAddresses(host: host, port: port) else {
            return targets.refusal(host: host, port: port).map { .refused($0) } ?? .allowed(addresses: [])
        }
        do {
            let addresses = try await names.addresses(of: host)
            return targets.refusal(host: host, port: port, addresses: addresses).map { .refused($0) } ?? .allowed(addresses: addresses)
        } catch {
            return .refused("cannot be checked against BranchTargets: \(error)")
        }
    }
}
