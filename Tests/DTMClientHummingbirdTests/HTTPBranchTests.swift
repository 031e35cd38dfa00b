import DTMClient
import DTMClientHummingbird
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// An HTTP branch served with the helper answers as dtm reads HTTP branch results (WIRE §3).
/// The branch contexts a handler saw.
final class Seen: Sendable {
    let contexts = Mutex<[BranchContext]>([])
}

@Suite struct HTTPBranchTests {
    func app(_ seen: Seen) -> some ApplicationProtocol {
        let router = Router()
        router.dtmBranch("/api/busi/TransOut") { request, _, branch in
            seen.contexts.withLock { $0.append(branch) }
            switch request.uri.queryParameters.get("case") {
            case "failure": throw DtmError.failure("balance too low")
            case "ongoing": throw DtmError.ongoing("not yet")
            case "error": throw CancellationError()
            default: return
            }
        }
        return Application(router: router)
    }

    @Test func answersDtmsStatusesAndBodies() async throws {
        let seen = Seen()
        let query = "gid=g1&trans_type=saga&branch_id=01&op=action"
        try await app(seen).test(.router) { client in
            try await client.execute(uri: "/api/busi/TransOut?\(query)", method: .post, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"dtm_result":"SUCCESS"}"#)
            }
            try await client.execute(uri: "/api/busi/TransOut?\(query)&case=failure", method: .post) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body) == #"{"dtm_result":"FAILURE","message":"balance too low"}"#)
            }
            try await client.execute(uri: "/api/busi/TransOut?\(query)&case=ongoing", method: .get) { response in
                #expect(response.status.code == 425)
                #expect(String(buffer: response.body) == #"{"dtm_result":"ONGOING","message":"not yet"}"#)
            }
            try await client.execute(uri: "/api/busi/TransOut?\(query)&case=error", method: .get) { response in
                #expect(response.status == .internalServerError)
            }
            try await client.execute(uri: "/api/busi/TransOut?gid=g1&trans_type=saga&op=action", method: .post) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("branch_id"))
            }
        }
        #expect(seen.contexts.withLock { $0 }.first == BranchContext(gid: "g1", transType: "saga", branchID: "01", op: "action"))
        #expect(seen.contexts.withLock { $0 }.count == 4)
    }
}
