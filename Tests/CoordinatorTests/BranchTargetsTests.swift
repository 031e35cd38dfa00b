import DTMWire
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
