public import Invokers
public import Modes

/// dtmd's branch-target rules (`BranchTargets`) at call time, for the host:port a call is about
/// to reach (a URL's, or what a discovery target resolved to): a name is resolved when only its
/// addresses can decide — a CIDR list, or one of dtmd's own ports (another name for dtmd). A
/// name that does not resolve is refused, as its call could not be made anyway.
///
/// The check resolves the name and the connection resolves it again: a DNS server that answers
/// the two differently (rebinding) is not stopped. Patterns of names and IPs in URLs have no
/// such gap.
public struct CallTargetCheck: Sendable {
    let targets: BranchTargets
    let names: any NameResolver

    public init(targets: BranchTargets, names: any NameResolver = SystemNameResolver()) {
        self.targets = targets
        self.names = names
    }

    /// Why a call to `host:port` is refused; nil when it may be made.
    public func refusal(host: String, port: Int) async -> String? {
        guard targets.needsAddresses(host: host, port: port) else { return targets.refusal(host: host, port: port) }
        do {
            return targets.refusal(host: host, port: port, addresses: try await names.addresses(of: host))
        } catch {
            return "cannot be checked against BranchTargets: \(error)"
        }
    }
}
