import DTMWire
import Modes
import Projections
import Testing

/// The self-call guard's rule: dtmd's own ports on this machine are refused, anything else is not.
@Suite struct SelfCallGuardTests {
    let guarded = SelfCallGuard(ports: [36789, 36790], localHosts: ["dtm-host", "10.1.2.3"])

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
