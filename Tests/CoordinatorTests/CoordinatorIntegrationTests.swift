@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import EventLog
import ByteIdentity
import Foundation
import LMDBStore
import GRPCCore
import GRPCNIOTransportHTTP2
import Projections
import Synchronization
import Testing

/// A gRPC branch service in Swift: answers `/busi.Busi/<method>` for a fixed set of methods by a
/// plan per method (default success), recording the payload and metadata of every call.
final class SwiftBranchServer: Sendable {
    struct Call: Sendable {
        let method: String
        let payload: [UInt8]
        let metadata: [String: String]
    }

    static let methods = ["A1", "A2", "A3", "C1", "C2", "C3", "Confirm", "Cancel"]
    let calls = Mutex<[Call]>([])
    let plans = Mutex<[String: [RPCError.Code]]>([:])
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    init(port: Int = 0) {
        let recorder = Recorder()
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        for method in Self.methods {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "busi.Busi", method: method),
                deserializer: RawBytesCoding(), serializer: RawBytesCoding()
            ) { request, context in
                let message = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
                var metadata = [String: String]()
                for entry in request.metadata { if case let .string(value) = entry.value { metadata[entry.key] = value } }
                let answer = recorder.owner?.record(Call(method: method, payload: message, metadata: metadata))
                if let answer { throw RPCError(code: answer, message: "planned \(answer)") }
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
        server = GRPCServer(transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext), router: router)
        recorder.owner = self
    }

    /// Lets the handlers reach the server object created after them.
    final class Recorder: @unchecked Sendable { weak var owner: SwiftBranchServer? }

    func record(_ call: Call) -> RPCError.Code? {
        calls.withLock { $0.append(call) }
        return plans.withLock { plans in
            guard var queue = plans[call.method], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            plans[call.method] = queue
            return next
        }
    }

    func url(_ method: String) async throws -> String {
        guard let address = try await server.listeningAddress?.ipv4 else { throw RequestError.failure("not listening") }
        return "127.0.0.1:\(address.port)/busi.Busi/\(method)"
    }
}

/// dtmd's pieces in one process: event log, view, coordinator, gRPC invoker and a Swift branch server.
func withCoordinator(
    clock: any TransactionClock = SystemClock(), _ body: (Coordinator, SwiftBranchServer) async throws -> Void
) async throws {
    let path = NSTemporaryDirectory() + "swiftdtm-coordinator-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: path) }
    var configuration = LMDBStoreConfiguration(path: path)
    configuration.durability = .noSync
    let store = try await LMDBTransactionStore.open(configuration)
    let invoker = GrpcBranchInvoker()
    var defaults = TransactionDefaults()
    defaults.retryInterval = 1
    let coordinator = Coordinator(store: store, invoker: invoker, defaults: defaults, clock: clock)
    let busi = SwiftBranchServer()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await busi.server.serve() }
        group.addTask { try await invoker.run() }
        // Rounds no client waits for run in the scheduler, as in dtmd.
        group.addTask { try await Scheduler(coordinator: coordinator, cronInterval: .milliseconds(200)).run() }
        defer {
            group.cancelAll()
            invoker.shutdown()
            busi.server.beginGracefulShutdown()
        }
        try await body(coordinator, busi)
    }
    try await store.close()
}

@Suite(.serialized) struct CoordinatorIntegrationTests {
    @Test func sagaOverGrpcSendsRawPayloadsAndMetadataAndRecordsEveryAttempt() async throws {
        try await withCoordinator { coordinator, busi in
            var request = TransactionRequest()
            request.gid = "saga-ok"
            request.transType = "saga"
            let steps = [["action": try await busi.url("A1"), "compensate": try await busi.url("C1")],
                         ["action": try await busi.url("A2"), "compensate": try await busi.url("C2")]]
            request.steps = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
            request.payloads = [Data([1, 2, 3]), Data([4, 5])]
            request.waitResult = true
            request.branchHeaders = ["X-Trace": "t1"]
            try await coordinator.submit(request)
            let state = try #require(try await coordinator.transaction("saga-ok"))
            #expect(state.status == .succeed)
            let calls = busi.calls.withLock { $0 }
            #expect(calls.map(\.method) == ["A1", "A2"])
            #expect(calls.map(\.payload) == [[1, 2, 3], [4, 5]])
            #expect(calls[0].metadata["dtm-gid"] == "saga-ok")
            #expect(calls[0].metadata["dtm-trans_type"] == "saga")
            #expect(calls[1].metadata["dtm-branch_id"] == "02")
            #expect(calls[1].metadata["dtm-op"] == "action")
            #expect(calls[1].metadata["x-trace"] == "t1")
            #expect(state.branch(id: "01", op: "action")?.attempts == 1)
        }
    }

    @Test func sagaFailureCompensatesAndWaitResultAnswersFailure() async throws {
        try await withCoordinator { coordinator, busi in
            busi.plans.withLock { $0["A2"] = [.aborted] }
            var request = TransactionRequest()
            request.gid = "saga-fail"
            request.transType = "saga"
            let steps = [["action": try await busi.url("A1"), "compensate": try await busi.url("C1")],
                         ["action": try await busi.url("A2"), "compensate": try await busi.url("C2")]]
            request.steps = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
            request.payloads = [Data(), Data()]
            request.waitResult = true
            let reason = "url:\(try await busi.url("A2")) return failed: planned aborted FAILURE"
            await #expect(throws: RequestError.failure(reason)) { try await coordinator.submit(request) }
            #expect(busi.calls.withLock { $0.map(\.method) } == ["A1", "A2", "C2", "C1"])
            #expect(try await coordinator.transaction("saga-fail")?.status == .failed)
            await #expect(throws: RequestError.failure("current status 'failed', cannot sumbmit.")) { try await coordinator.submit(request) }
        }
    }

    @Test func tccRegistersThenConfirmsAndAnErrorSchedulesARetry() async throws {
        let clock = ManualClock()
        try await withCoordinator(clock: clock) { coordinator, busi in
            busi.plans.withLock { $0["Confirm"] = [.unavailable] }
            var request = TransactionRequest()
            request.gid = "tcc-1"
            request.transType = "tcc"
            try await coordinator.prepare(request)
            var branch = BranchRegistrationRequest()
            branch.gid = "tcc-1"
            branch.transType = "tcc"
            branch.branchID = "01"
            branch.data = ["confirm": try await busi.url("Confirm"), "cancel": try await busi.url("Cancel")]
            try await coordinator.registerBranch(branch)
            try await coordinator.registerBranch(branch)
            #expect(try await coordinator.transaction("tcc-1")?.branches.count == 2, "registering again changes nothing")
            try await coordinator.submit(request)
            let afterError = try #require(try await coordinator.drive("tcc-1"))
            #expect(afterError.status == .submitted || afterError.status == .succeed)
            // The first confirm failed with Unavailable: a retry is scheduled a second later.
            clock.advance(by: .milliseconds(1100))
            let finished = try #require(try await coordinator.drive("tcc-1"))
            #expect(finished.status == .succeed)
            #expect(busi.calls.withLock { $0.map(\.method) } == ["Confirm", "Confirm"])
            #expect(finished.branch(id: "01", op: "confirm")?.attempts == 2)
        }
    }

    @Test func canonicallyEquivalentGidsStayTwoTransactionsEverywhere() async throws {
        try await withCoordinator { coordinator, busi in
            let gids = [ExactIdentityTests.composed, ExactIdentityTests.decomposed]
            let steps = [["action": try await busi.url("A1"), "compensate": try await busi.url("C1")]]
            let stepsJSON = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
            // Submitted together, so both land in the same group commit.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, gid) in gids.enumerated() {
                    var request = TransactionRequest()
                    request.gid = gid
                    request.transType = "saga"
                    request.steps = stepsJSON
                    request.payloads = [Data([UInt8(index)])]
                    request.waitResult = true
                    group.addTask { try await coordinator.submit(request) }
                }
                try await group.waitForAll()
            }
            let calls = busi.calls.withLock { $0 }
            #expect(calls.count == 2)
            for (index, gid) in gids.enumerated() {
                let state = try #require(try await coordinator.transaction(gid))
                #expect(state.gid.hasSameBytes(as: gid))
                #expect(state.status == .succeed)
                let call = try #require(calls.first { $0.payload == [UInt8(index)] })
                #expect(call.metadata["dtm-gid"]?.hasSameBytes(as: gid) == true, "the branch call carries its own gid's bytes")
                let history = try embeddedStore(coordinator).log.records(ofStream: gid)
                #expect(!history.isEmpty)
                #expect(history.allSatisfy { $0.streamID.hasSameBytes(as: gid) }, "each history holds only its own events")
            }
            let replayed = try Replay.states(of: embeddedStore(coordinator).log)
            let snapshot = try embeddedStore(coordinator).view.snapshot()
            #expect(replayed.count == 2)
            #expect(snapshot.states == replayed)
            #expect(snapshot.indexProblems.isEmpty)
            let events = try embeddedStore(coordinator).log.records(from: 1).map(RecordedEvent.init)
            for gid in gids {
                #expect(DecisionAudit.check(events.filter { $0.gid.hasSameBytes(as: gid) }).isEmpty)
            }
        }
    }

    @Test func outOfRangeValuesWrittenByAnOlderBuildAreDrivenWithoutTrapping() async throws {
        try await withCoordinator { coordinator, busi in
            busi.plans.withLock { $0["A1"] = [.unavailable, .unavailable] }
            // As an older build without bounds stored them: nothing validates events appended directly.
            var created = TransactionCreated()
            created.transType = "saga"
            created.status = .submitted
            created.options = TransactionOptions.with {
                $0.timeoutToFail = .max
                $0.retryInterval = .max
                $0.requestTimeout = .max
            }
            created.retryInterval = .max
            created.nextDueUs = 1
            created.branches = [
                BranchSpec.with { $0.branchID = "01"; $0.op = "compensate" },
                BranchSpec.with { $0.branchID = "01"; $0.op = "action"; $0.url = "" },
            ]
            created.branches[1].url = try await busi.url("A1")
            _ = try await embeddedStore(coordinator).log.append([try TransactionEvent.created(created).logEntry(gid: "stored-huge")])
            let first = try #require(try await coordinator.drive("stored-huge"))
            #expect(first.status == .submitted)
            #expect(first.nextDueUs == .max, "the retry time saturates")
            #expect(first.retryInterval == .max)
            // A client makes it due now; the next round runs (this test's or the scheduler's, which
            // the reset wakes: exactly one, as it is claimed) and schedules again without trapping.
            func roundAfterReset() async throws -> TransactionState? {
                if let current = try await coordinator.transaction("stored-huge"), current.status.isTerminal { return current }
                try await coordinator.resetNextCronTime("stored-huge")
                for _ in 0..<200 {
                    let state = try await coordinator.driveIfDue("stored-huge")
                    if let state, state.nextDueUs > Int64(Date().timeIntervalSince1970 * 1_000_000) || state.status.isTerminal { return state }
                    try await Task.sleep(for: .milliseconds(10))
                }
                return try await coordinator.transaction("stored-huge")
            }
            // (The scheduler may have run a round of its own before the first drive: count from it.)
            let attemptsBefore = try #require(first.branch(id: "01", op: "action")?.attempts)
            let second = try #require(try await roundAfterReset())
            #expect(second.branch(id: "01", op: "action")?.attempts == attemptsBefore + 1)
            #expect(try await roundAfterReset()?.status == .succeed)
            // A RetryLimit past any loop bound: retried at once in one round, without trapping.
            busi.plans.withLock { $0["A1"] = [.unavailable, .unavailable] }
            created.options.retryLimit = .max
            _ = try await embeddedStore(coordinator).log.append([try TransactionEvent.created(created).logEntry(gid: "stored-huge-limit")])
            let limited = try #require(try await coordinator.drive("stored-huge-limit"))
            #expect(limited.status == .succeed)
            #expect(limited.branch(id: "01", op: "action")?.attempts == 3)
        }
    }
}

/// The embedded store under a test coordinator, for tests that read its log and view directly.
func embeddedStore(_ coordinator: Coordinator) throws -> LMDBTransactionStore {
    try #require(coordinator.store as? LMDBTransactionStore)
}
