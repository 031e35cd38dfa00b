@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import Foundation
import Projections
import Testing

func sagaRequest(gid: String = "gid-1", steps: Int = 2) -> TransactionRequest {
    var request = TransactionRequest()
    request.gid = gid
    request.transType = "saga"
    request.steps = "[" + (1...steps).map { #"{"action":"localhost:1/busi.Busi/A\#($0)","compensate":"localhost:1/busi.Busi/C\#($0)"}"# }.joined(separator: ",") + "]"
    request.payloads = (1...steps).map { Data("p\($0)".utf8) }
    return request
}

func invalidMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let RequestError.invalidArgument(message) {
        return message
    } catch {
        return "unexpected \(error)"
    }
}

@Suite struct RequestTests {
    let defaults = TransactionDefaults()

    @Test func sagaStepsBecomeCompensateAndActionBranchesWithDefaultsFilledIn() throws {
        let created = try TransactionCreation.created(sagaRequest(), status: .submitted, defaults: defaults, now: 5)
        #expect(created.branches.map { "\($0.branchID)/\($0.op)" } == ["01/compensate", "01/action", "02/compensate", "02/action"])
        #expect(created.branches.map(\.payload) == [Data("p1".utf8), Data("p1".utf8), Data("p2".utf8), Data("p2".utf8)])
        #expect(created.options.retryInterval == 10)
        #expect(created.options.requestTimeout == 3)
        #expect(created.options.timeoutToFail == 0, "a saga has no timeout unless it asks for one")
        #expect(created.nextDueUs == 5)
    }

    @Test func msgGetsAQueryPreparedBranchAndTheServerTimeout() throws {
        var request = sagaRequest(steps: 1)
        request.transType = "msg"
        request.queryPrepared = "localhost:1/busi.Busi/QueryPrepared"
        request.customData = #"{"delay":4}"#
        let prepared = try TransactionCreation.created(request, status: .prepared, defaults: defaults, now: 0)
        #expect(prepared.branches.map { "\($0.branchID)/\($0.op)" } == ["01/action", "00/msg"])
        #expect(prepared.options.timeoutToFail == 35)
        #expect(prepared.nextDueUs == 35_000_000)
        let submitted = try TransactionCreation.created(request, status: .submitted, defaults: defaults, now: 0)
        #expect(submitted.nextDueUs == 4_000_000, "delay postpones the first round")
    }

    @Test func badInputNamesTheField() {
        func message(_ change: (inout TransactionRequest) -> Void) -> String? {
            var request = sagaRequest()
            change(&request)
            return invalidMessage { _ = try TransactionCreation.created(request, status: .submitted, defaults: defaults, now: 0) }
        }
        #expect(message { $0.gid = "" }?.contains("Gid") == true)
        #expect(message { $0.gid = String(repeating: "x", count: 129) }?.contains("Gid") == true)
        #expect(message { $0.gid = "a/b" }?.contains("Gid") == true)
        #expect(message { $0.transType = "sago" }?.contains("TransType") == true)
        #expect(message { $0.steps = "[{" }?.contains("Steps") == true)
        #expect(message { $0.steps = #"{"action":"x"}"# }?.contains("Steps") == true)
        #expect(message { $0.payloads.removeLast() }?.contains("BinPayloads") == true)
        #expect(message { $0.steps = #"[{"action":"localhost:1"},{"action":"localhost:1/a.B/C"}]"# }?.contains("method path") == true)
        #expect(message { $0.steps = #"[{"action":"zk://h:2181/svc/a.B/C"},{"action":"localhost:1/a.B/C"}]"# }?.contains("unknown scheme") == true)
        #expect(message { $0.steps = #"[{"action":"etcd://h:2379/svc/a.B/C"},{"action":"discov://h:2379/svc/a.B/C"}]"# } == nil)
        #expect(message { $0.customData = #"{"concurrent":true,"orders":{"0":[1],"1":[0]}}"# }?.contains("cycle") == true)
        #expect(message { $0.customData = #"{"orders":{"5":[0]}}"# }?.contains("orders") == true)
        #expect(message { $0.retryInterval = -1 }?.contains("RetryInterval") == true)
        #expect(message { _ in } == nil)
    }

    @Test func grpcURLsSplitLikeDtm() throws {
        let url = try GrpcBranchURL(parsing: "localhost:8080/trans.TransSvc/TransOut")
        #expect(url.target == "localhost:8080")
        #expect(url.service == "trans.TransSvc")
        #expect(url.method == "TransOut")
        #expect(HostPort(url.target) == HostPort("localhost:8080"))
        #expect(HostPort(url.target)?.port == 8080)
        let etcd = try GrpcBranchURL(parsing: "etcd://h1:2379,h2:2379/trans.rpc/trans.TransSvc/TransOut?user=u&password=p")
        #expect(etcd.target == "etcd://h1:2379,h2:2379/trans.rpc?user=u&password=p")
        #expect(etcd.service == "trans.TransSvc")
        #expect(etcd.method == "TransOut")
        let k8s = try GrpcBranchURL(parsing: "k8s://default/trans:8080/trans.TransSvc/TransIn")
        #expect(k8s.target == "k8s://default/trans:8080")
        #expect(HostPort("[::1]:80")?.host == "::1")
        #expect(HostPort("nohost") == nil)
        #expect(throws: RequestError.self) { try GrpcBranchURL(parsing: "localhost/trans.TransSvc/TransOut") }
        #expect(throws: RequestError.self) { try GrpcBranchURL(parsing: "localhost:8080//TransOut") }
    }

    @Test func gidsAreUniqueAndLookLikeDtms() {
        let gids = (0..<1000).map { _ in GidGenerator.next() }
        #expect(Set(gids).count == 1000)
        #expect(gids.allSatisfy { $0.count == 22 && $0.allSatisfy(GidGenerator.alphabet.contains) })
    }
}
