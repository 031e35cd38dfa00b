@testable import DTMClient
import DTMWire
import Foundation
import Testing

/// The SDK's requests in the flat JSON bodies of dtm's HTTP API (WIRE §3).
@Suite struct DtmHTTPAPITests {
    @Test func aSagaIsSentAsDtmcliSendsIt() throws {
        var saga = Saga(gid: "g1")
        saga.options.waitResult = true
        saga.options.retryInterval = 2
        saga.options.branchHeaders = ["x-tenant": "a"]
        let request = try transactionRequest(
            gid: saga.gid, transType: "saga", steps: [["action": "http://busi/TransOut", "compensate": "http://busi/TransOutCompensate"]],
            payloads: [Data(#"{"amount":30}"#.utf8)], options: saga.options)
        let body = try DtmHTTPAPI.body(of: request)
        #expect(body["gid"] as? String == "g1")
        #expect(body["trans_type"] as? String == "saga")
        #expect(body["steps"] as? [[String: String]] == [["action": "http://busi/TransOut", "compensate": "http://busi/TransOutCompensate"]])
        #expect(body["payloads"] as? [String] == [#"{"amount":30}"#])
        #expect(body["wait_result"] as? Bool == true)
        #expect(body["retry_interval"] as? Int64 == 2)
        #expect(body["branch_headers"] as? [String: String] == ["x-tenant": "a"])
        #expect(body["timeout_to_fail"] == nil)
        #expect(body["custom_data"] == nil)
    }

    @Test func bytesThatAreNotTextCannotTravelOverHTTP() throws {
        let request = try transactionRequest(gid: "g2", transType: "msg", steps: [["action": "http://busi/TransIn"]],
                                             payloads: [Data([0xFF, 0xFE])], options: TransOptions())
        #expect(throws: DtmHTTPError.payloadNotText("payload 0")) { try DtmHTTPAPI.body(of: request) }
    }
}
