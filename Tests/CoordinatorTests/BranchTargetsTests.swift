import DTMWire
import Coordinator
import Invokers
import Modes
import Projections
import Testing

/// Where dtmd may call: never its own ports on this machine; the allow and deny lists.
@Suite struct BranchTargetsTests {
    let guarded = try! BranchTargets(ports: [36789, 36790], localHosts: ["dtm-host", "10.1.2.3"])

    @Test func dtmdsOwnListenersAreRefusedNamingTheField() {
        for url in [
            "http://127.0.0.1:36789/api/dtmsvr/forceStop", "http://localhost:36789/api/dtmsvr/abort", "http://LOCALHOST:36789/x",
            "http://[::1]:36789/api/dtmsvr/submit", "http://0.0.0.0:36789/x", "http://127.8.9.10:36789/x", "http://dtm-host:36789/x",
            "127.0.0.1:36790/dtmgimp.Dtm/Abort", "localhost:36790/dtmgimp.Dtm/Submit", "10.1.2.3:36790/dtmgimp.Dtm/Abort",
            "[::ffff:127.0.0.1]:36790/dtmgimp.Dtm/Abort",
        ] {
            #expect(throws: RequestError.self, "\(url)") { try guarded.check(url, field: "branch 01 action URL") }
        }
        #expect(throws: RequestError.invalidArgument(
            "QueryPrepared 'http://127.0.0.1:36789/api/dtmsvr/forceStop' points at dtmd itself (its own port 36789 on this machine): dtmd does not call itself"
        )) { try guarded.check("http://127.0.0.1:36789/api/dtmsvr/forceStop", field: "QueryPrepared") }
    }

    @Test func otherPortsHostsAndDiscoveryTargetsPass() throws {
        for url in [
            "http://127.0.0.1:8081/api/busi/TransOut", "http://other-host:36789/x", "https://127.0.0.1/x", "http://10.9.9.9:36789/x",
            "127.0.0.1:8082/busi.Busi/TransIn", "etcd://localhost:2379/dtmservice/dtmgimp.Dtm/Abort", "topic://orders", "",
        ] {
            try guarded.check(url, field: "branch 01 action URL")
        }
        // https on dtmd's port: refused the same way (the port is what names dtmd).
        #expect(throws: RequestError.self) { try guarded.check("https://localhost:36789/x", field: "f") }
    }

    @Test func aNewTransactionIsCheckedBranchByBranch() {
        let created = TransactionCreated.with {
            $0.branches = [
                .with { $0.branchID = "01"; $0.op = "action"; $0.url = "http://127.0.0.1:8081/ok" },
                .with { $0.branchID = "01"; $0.op = "compensate"; $0.url = "127.0.0.1:36790/dtmgimp.Dtm/Abort" },
            ]
        }
        #expect(throws: RequestError.invalidArgument(
            "branch 01 compensate URL '127.0.0.1:36790/dtmgimp.Dtm/Abort' points at dtmd itself (its own port 36790 on this machine): dtmd does not call itself"
        )) { try guarded.check(created) }
    }
}

@Suite struct BranchTargetListsTests {
    @Test func denyWinsAndAllowRefusesTheRest() throws {
        let targets = try BranchTargets(ports: [36789], localHosts: [], allow: ["10.0.0.0/8", "*.svc.cluster.local", "busi.example.com"],
                                        deny: ["10.9.0.0/16", "admin.svc.cluster.local"])
        for url in ["http://10.1.2.3:8080/x", "trans.default.svc.cluster.local:9000/t.T/M", "https://busi.example.com/api", "http://[::ffff:10.0.0.1]:80/x"] {
            try targets.check(url, field: "f")
        }
        #expect(throws: RequestError.invalidArgument("f 'http://10.9.1.1:8080/x' is refused by BranchTargets.Deny (10.9.0.0/16)")) {
            try targets.check("http://10.9.1.1:8080/x", field: "f")
        }
        #expect(throws: RequestError.invalidArgument("f 'admin.svc.cluster.local:1/a.A/B' is refused by BranchTargets.Deny (admin.svc.cluster.local)")) {
            try targets.check("admin.svc.cluster.local:1/a.A/B", field: "f")
        }
        #expect(throws: RequestError.invalidArgument("f 'http://169.254.169.254:80/latest' matches no entry of BranchTargets.Allow")) {
            try targets.check("http://169.254.169.254:80/latest", field: "f")
        }
        // A discovery target passes here: its resolved address is checked at call time.
        try targets.check("etcd://127.0.0.1:2379/trans.rpc/t.T/M", field: "f")
        #expect(targets.refusal(host: "192.168.1.1", port: 9000) == "matches no entry of BranchTargets.Allow")
        #expect(targets.refusal(host: "fd00::1", port: 9000) == "matches no entry of BranchTargets.Allow")
    }

    @Test func ipv6NetworksAndBadEntries() throws {
        let targets = try BranchTargets(ports: [], localHosts: [], deny: ["fd00::/8"])
        #expect(targets.refusal(host: "fd12::1", port: 1) == "is refused by BranchTargets.Deny (fd00::/8)")
        #expect(targets.refusal(host: "fe80::1", port: 1) == nil)
        #expect(throws: RequestError.self) { try BranchTargets(ports: [], localHosts: [], allow: ["10.0.0.0/33"]) }
        #expect(throws: RequestError.self) { try BranchTargets(ports: [], localHosts: [], deny: ["*"]) }
        #expect(throws: RequestError.self) { try BranchTargets(ports: [], localHosts: [], deny: ["a*b"]) }
    }
}

/// Names judged by the addresses they resolve to, at call time.
@Suite struct CallTargetCheckTests {
    /// A resolver with a fixed table; other names do not resolve.
    struct Table: NameResolver {
        let names: [String: [String]]
        func addresses(of host: String) async throws -> [String] {
            guard let addresses = names[host] else { throw NameResolutionError(description: "'\(host)' does not resolve") }
            return addresses
        }
    }

    let table = Table(names: [
        "dtm.alias.example": ["127.0.0.1"], "lan.alias.example": ["10.1.2.3"], "busi.internal": ["10.20.0.5", "10.20.0.6"],
        "split.internal": ["10.20.0.7", "192.168.9.9"], "meta.internal": ["169.254.169.254"], "public.example": ["93.184.216.34"],
        "six.internal": ["fd00::5"],
    ])

    @Test func aNameThatResolvesToDtmdOnItsPortIsRefusedAtCallTime() async throws {
        let targets = try BranchTargets(ports: [36789, 36790], localHosts: ["10.1.2.3"])
        // At submit the name cannot be judged: it passes, and is resolved when called.
        try targets.check("http://dtm.alias.example:36789/api/dtmsvr/forceStop", field: "f")
        #expect(targets.needsAddresses(host: "dtm.alias.example", port: 36789))
        let check = CallTargetCheck(targets: targets, names: table)
        #expect(await check.verdict(host: "dtm.alias.example", port: 36789) == .refused("resolves to 127.0.0.1, dtmd itself (its own port 36789 on this machine): dtmd does not call itself"))
        #expect(await check.verdict(host: "lan.alias.example", port: 36790) == .refused("resolves to 10.1.2.3, dtmd itself (its own port 36790 on this machine): dtmd does not call itself"))
        // Other ports, and names elsewhere, are not resolved at all.
        #expect(!targets.needsAddresses(host: "dtm.alias.example", port: 8080))
        #expect(await check.verdict(host: "unknown.example", port: 8080) == .allowed(addresses: []))
        #expect(await check.verdict(host: "public.example", port: 36789) == .allowed(addresses: ["93.184.216.34"]))
    }

    @Test func cidrListsJudgeTheAddressesOfNames() async throws {
        let targets = try BranchTargets(ports: [36789], localHosts: [], allow: ["10.0.0.0/8", "fd00::/8", "*.trusted.example"],
                                        deny: ["10.20.0.6/32"])
        // At submit: a name Allow's patterns do not name waits for its addresses, as CIDRs could allow it.
        try targets.check("http://busi.internal:8080/api/TransIn", field: "f")
        let check = CallTargetCheck(targets: targets, names: table)
        #expect(await check.verdict(host: "six.internal", port: 8080) == .allowed(addresses: ["fd00::5"]), "the checked addresses, to dial")
        #expect(await check.verdict(host: "lan.alias.example", port: 8080) == .allowed(addresses: ["10.1.2.3"]))
        #expect(await check.verdict(host: "busi.internal", port: 8080) == .refused("resolves to 10.20.0.6, which BranchTargets.Deny refuses (10.20.0.6/32)"))
        #expect(await check.verdict(host: "split.internal", port: 8080) == .refused("resolves to 192.168.9.9, which matches no entry of BranchTargets.Allow"))
        #expect(await check.verdict(host: "meta.internal", port: 80) == .refused("resolves to 169.254.169.254, which matches no entry of BranchTargets.Allow"))
        #expect(await check.verdict(host: "nowhere.internal", port: 80) == .refused("cannot be checked against BranchTargets: 'nowhere.internal' does not resolve"))
        // A name an Allow pattern names is taken as it is, unless Deny's CIDRs refuse its addresses.
        #expect(await check.verdict(host: "x.trusted.example", port: 80) == .refused("cannot be checked against BranchTargets: 'x.trusted.example' does not resolve"))
        let namesOnly = try BranchTargets(ports: [], localHosts: [], allow: ["*.trusted.example"])
        #expect(!namesOnly.needsAddresses(host: "x.trusted.example", port: 80))
        #expect(await CallTargetCheck(targets: namesOnly, names: table).verdict(host: "x.trusted.example", port: 80) == .allowed(addresses: []))
        // Without a CIDR in Allow, a name it does not name is refused at submit, unresolved.
        #expect(throws: RequestError.invalidArgument("f 'http://busi.internal:8080/x' matches no entry of BranchTargets.Allow")) {
            try namesOnly.check("http://busi.internal:8080/x", field: "f")
        }
    }

    @Test func theSystemResolverAnswersForLocalhost() async throws {
        let addresses = try await SystemNameResolver().addresses(of: "localhost")
        #expect(!addresses.isEmpty && addresses.allSatisfy { $0 == "127.0.0.1" || $0 == "::1" })
        #expect(try await SystemNameResolver().addresses(of: "10.1.2.3") == ["10.1.2.3"])
    }
}
