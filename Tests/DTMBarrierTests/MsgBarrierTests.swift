import DTMBarrier
import DTMClient
import DTMClientTesting
import DTMWire
import GRPCCore
import Testing

/// The msg's local transaction behind the barrier (`doAndSubmit(…, database:)`) against dtm in
/// process, with dtm's QueryPrepared served from the same barrier table.
@Suite struct MsgBarrierTests {
    @Test(arguments: Backend.available) func aCommittedLocalTransactionIsSubmitted(_ backend: Backend) async throws {
        try await withMsgHarness(backend) { dtm, busi, database in
            var msg = Msg(gid: try await dtm.client.newGid())
            try msg.add(busi.url("TransIn"), [UInt8]([7]))
            try await database.doAndSubmit(msg, dtm.client, queryPrepared: QueryPreparedService.url, recording: "local")
            try await dtm.waitForStatus(msg.gid, "succeed")
            #expect(busi.calls.map(\.method) == ["TransIn"])
            #expect(try await database.businessRows() == ["local"])
        }
    }

    @Test(arguments: Backend.available) func aFailureAbortsTheMsgAndCallsNoBranch(_ backend: Backend) async throws {
        try await withMsgHarness(backend) { dtm, busi, database in
            var msg = Msg(gid: try await dtm.client.newGid())
            try msg.add(busi.url("TransIn"), [UInt8]([7]))
            await #expect(throws: DtmError.failure("insufficient balance")) {
                try await database.doAndSubmit(msg, dtm.client, queryPrepared: QueryPreparedService.url, recording: "local",
                                               thenThrowing: DtmError.failure("insufficient balance"))
            }
            #expect(try await dtm.status(of: msg.gid) == "failed")
            #expect(busi.calls.isEmpty)
            #expect(try await database.businessRows() == [])
        }
    }

    @Test(arguments: Backend.available) func anotherErrorAsksQueryPreparedWhichAbortsTheRolledBackMsg(_ backend: Backend) async throws {
        try await withMsgHarness(backend) { dtm, busi, database in
            var msg = Msg(gid: try await dtm.client.newGid())
            try msg.add(busi.url("TransIn"), [UInt8]([7]))
            await #expect(throws: BusinessError.self) {
                try await database.doAndSubmit(msg, dtm.client, queryPrepared: QueryPreparedService.url, recording: "local",
                                               thenThrowing: BusinessError())
            }
            // The local transaction rolled back: QueryPrepared said FAILURE, so the msg was aborted.
            #expect(try await dtm.status(of: msg.gid) == "failed")
            #expect(busi.calls.isEmpty)
            // And a late copy of the local transaction can never commit.
            let late = try BranchBarrier(transType: "msg", gid: msg.gid, branchID: "00", op: "msg")
            await #expect(throws: BarrierError.duplicated(msg.gid)) { try await database.call(late, recording: "late") }
            #expect(try await database.businessRows() == [])
        }
    }

    @Test(arguments: Backend.available) func dtmAsksQueryPreparedForAMsgLeftPrepared(_ backend: Backend) async throws {
        try await withMsgHarness(backend) { dtm, busi, database in
            // An application that died after its local transaction committed, before Submit:
            var committed = Msg(gid: try await dtm.client.newGid())
            try committed.add(busi.url("TransIn"), [UInt8]([1]))
            try await committed.prepare(dtm.client, queryPrepared: QueryPreparedService.url)
            let barrier = try BranchBarrier(transType: "msg", gid: committed.gid, branchID: "00", op: "msg")
            #expect(try await database.call(barrier, recording: "committed"))
            // … and one that died before it committed.
            var lost = Msg(gid: try await dtm.client.newGid())
            try lost.add(busi.url("TransIn"), [UInt8]([2]))
            try await lost.prepare(dtm.client, queryPrepared: QueryPreparedService.url)

            try await dtm.advance(by: .seconds(60))
            try await dtm.waitForStatus(committed.gid, "succeed")
            try await dtm.waitForStatus(lost.gid, "failed")
            #expect(busi.calls.map(\.payload) == [[1]])
            #expect(try await database.businessRows() == ["committed"])
        }
    }
}

/// dtm in process with a `busi.Busi` branch service and a QueryPrepared answered from `backend`'s
/// barrier table.
func withMsgHarness(_ backend: Backend, _ body: (TestDtm, ScriptedBranches, any TestBarrierDatabase) async throws -> Void) async throws {
    try await backend.withDatabase { database in
        let busi = ScriptedBranches(service: "busi.Busi", methods: ["TransIn"])
        try await withTestDtm(branches: [busi, QueryPreparedService(database: database)]) { dtm in
            try await body(dtm, busi, database)
        }
    }
}

/// `busi.Busi/QueryPrepared`, as an application serves it: `BranchBarrier.queryPrepared`.
struct QueryPreparedService: RegistrableRPCService {
    static let url = "busi:1/busi.Busi/QueryPrepared"
    let database: any TestBarrierDatabase

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "busi.Busi", method: "QueryPrepared"),
            deserializer: RawBytesCoding(), serializer: RawBytesCoding()
        ) { request, _ in
            for try await _ in request.messages {}
            return try await dtmBranch(request.metadata) { context in
                try await database.queryPrepared(gid: context?.gid ?? "")
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
    }
}
