@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import Projections
import Testing

@Suite struct HttpBranchTests {
    @Test func answersAreReadByDtmsRules() {
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"SUCCESS"}"#).outcome == .success)
        #expect(HttpBranchInvoker.result(status: 200, body: "").outcome == .success)
        #expect(HttpBranchInvoker.result(status: 425, body: "").outcome == .ongoing)
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"ONGOING"}"#).outcome == .ongoing)
        #expect(HttpBranchInvoker.result(status: 409, body: "").outcome == .failure)
        #expect(HttpBranchInvoker.result(status: 200, body: #"{"dtm_result":"FAILURE"}"#).outcome == .failure)
        let error = HttpBranchInvoker.result(status: 502, body: "bad gateway")
        #expect(error.outcome == .error)
        #expect(error.message == "HTTP 502: bad gateway")
    }

    @Test func httpURLsAreBranchURLsToo() throws {
        try RequestValidation.url("http://localhost:8081/api/busi/TransOut", field: "Steps[0].action")
        try RequestValidation.url("https://busi.example/api/TransIn?x=1", field: "Steps[0].action")
        #expect(throws: RequestError.self) { try RequestValidation.url("http:///nohost", field: "Steps[0].action") }
        #expect(isHTTPBranchURL("http://a/b"))
        #expect(!isHTTPBranchURL("localhost:1/a.B/C"))
    }
}
