public import Coordinator
public import DTMClient
import DTMWire
import Foundation
public import GRPCCore
import GRPCInProcessTransport
import GrpcGateway
import Invokers
import MemoryStore
public import Modes
import Projections
import TransactionStore

/// dtm in this process, for unit tests of code that uses `DTMClient`: SwiftDTM's coordinator on
/// an in-memory store, reached through grpc-swift's in-process transport, calling the branch
/// services the test gives it — also in process. Nothing listens on a port; time is a
/// `ManualClock`, so retries and timeouts are tested by moving it (`advance(by:)`), not by waiting.
///
/// ```swift
/// try await withTestDtm(branches: [busi]) { dtm in
///     var saga = Saga(gid: try await dtm.client.newGid())
///     try saga.add(action: "busi:1/busi.Busi/TransOut", compensate: "busi:1/busi.Busi/TransOutRevert", payload)
///     try await saga.submit(dtm.client)
///     try await dtm.waitForStatus(saga.gid, "succeed")
/// }
/// ```
///
/// Branch URLs keep dtm's form (`<server>/pkg.Service/Method`); the server part is not dialled:
/// every gRPC branch call goes to `branches`. HTTP branches are not served.
public struct TestDtm: Sendable {
    /// The dtm address the test client sends to branches (`dtm-dtm`); a branch that starts
    /// sub-branches from it in a test uses the test's `client` instead.
    public static let target = "test-dtm"

    /// The SDK's client, connected to this dtm (its TCC Try calls also reach `branches`).
    public let client: DtmClient
    /// The coordinator's clock.
    public let clock: ManualClock
    let coordinator: Coordinator
    let store: InMemoryTransactionStore

    /// The transaction's status as dtm names it (`prepared`, `submitted`, `aborting`, `succeed`,
    /// `failed`); nil for an unknown gid.
    public func status(of gid: String) async throws -> String? {
        try await coordinator.transaction(gid)?.status.dtmName
    }

    /// Every branch call's op with its outcome (`SUCCESS`, `FAILURE`, `ONGOING`, `ERROR`), in the order dtm made them.
    public func branchCalls(of gid: String) async throws -> [(branchID: String, op: String, result: String)] {
        try await store.history(of: gid).compactMap { event in
            guard case let .attemptFinished(finished) = event.event.kind else { return nil }
            return (finished.branchID, finished.op, DtmResult(finished.outcome).rawValue)
        }
    }

    /// Moves the clock forward by `duration` and runs every round that is then due (retries,
    /// timeouts, QueryPrepared) before returning. Rounds due before the move finish first.
    public func advance(by duration: Duration) async throws {
        try await settle()
        clock.advance(by: duration)
        // A round may schedule its next one at or before now: run until nothing is due.
        for _ in 0..<100 {
            let due = try await unfinished().filter { $0.nextDueUs > 0 && $0.nextDueUs <= clock.now() }
            if due.isEmpty { break }
            // A round of the same transaction running in the scheduler finishes first (the gid's lock).
            for state in due { try await coordinator.driveIfDue(state.gid) }
        }
        try await settle()
    }

    /// Waits (in real time, at most `timeout`) until no round is running and nothing is due at the
    /// clock's time: what a transaction does before time moves on has been done.
    public func settle(timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let busy = try await unfinished().filter {
                coordinator.isDriving($0.gid) || ($0.nextDueUs > 0 && $0.nextDueUs <= clock.now())
            }
            if busy.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw TestDtmError.timedOut("transactions still running or due after \(timeout): \(busy.map(\.gid))")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Every transaction that has not finished.
    private func unfinished() async throws -> [TransactionState] {
        var found = [TransactionState]()
        var page: PageToken?
        repeat {
            let listed = try await store.transactions(matching: TransactionFilter(), page: page, limit: TransactionPage.maximumSize)
            found += listed.transactions.filter { !$0.status.isTerminal }
            page = listed.next
        } while page != nil
        return found
    }

    /// Waits (in real time, at most `timeout`) until `gid` reaches `status`; throws if it does not.
    public func waitForStatus(_ gid: String, _ status: String, timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await self.status(of: gid) != status {
            guard ContinuousClock.now < deadline else {
                throw TestDtmError.timedOut("transaction \(gid) is \(try await self.status(of: gid) ?? "unknown"), not \(status), after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// What the test dtm reports when a test's expectation cannot be met.
public enum TestDtmError: Error, CustomStringConvertible {
    case timedOut(String)

    public var description: String {
        switch self {
        case let .timedOut(message): return message
        }
    }
}

/// Runs `body` with a dtm in this process whose branch calls go to `branches` (see `TestDtm`).
/// `defaults` are the server's defaults (dtm's TimeoutToFail, RetryInterval, RequestTimeout).
public func withTestDtm<T: Sendable>(
    branches: [any RegistrableRPCService] = [], defaults: TransactionDefaults = TransactionDefaults(),
    _ body: (TestDtm) async throws -> T
) async throws -> T {
    let branchTransport = InProcessTransport()
    let branchServer = GRPCServer(transport: branchTransport.server, services: branches)
    let branchClient = GRPCClient(transport: branchTransport.client)
    let clock = ManualClock()
    let store = InMemoryTransactionStore(clock: { clock.now() })
    let coordinator = Coordinator(store: store, invoker: InProcessBranchInvoker(client: branchClient), defaults: defaults, clock: clock)
    let dtmTransport = InProcessTransport()
    let dtmServer = GRPCServer(transport: dtmTransport.server, services: [DtmService(coordinator: coordinator)])
    let dtmClient = GRPCClient(transport: dtmTransport.client)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await branchServer.serve() }
        group.addTask { try await branchClient.runConnections() }
        group.addTask { try await dtmServer.serve() }
        group.addTask { try await dtmClient.runConnections() }
        // Rounds no client waits for run in the scheduler, as in dtmd.
        group.addTask { try await Scheduler(coordinator: coordinator, cronInterval: .milliseconds(50)).run() }
        defer {
            group.cancelAll()
            dtmClient.beginGracefulShutdown()
            dtmServer.beginGracefulShutdown()
            branchClient.beginGracefulShutdown()
            branchServer.beginGracefulShutdown()
        }
        let client = DtmClient(
            dtm: Dtmgimp_Dtm.Client(wrapping: dtmClient), branches: InProcessBranchCaller(client: branchClient), target: TestDtm.target)
        return try await body(TestDtm(client: client, clock: clock, coordinator: coordinator, store: store))
    }
}

/// The coordinator's branch calls, to the in-process branch services.
struct InProcessBranchInvoker: BranchInvoker {
    let client: GRPCClient<InProcessTransport.Client>

    func invoke(_ call: BranchCall) async -> BranchResult {
        guard !isHTTPBranchURL(call.url) else { return BranchResult(.error, "the test dtm serves no HTTP branches (\(call.url))") }
        do {
            var options = CallOptions.defaults
            options.timeout = call.timeout
            try await client.callRaw(
                try GrpcBranchURL(parsing: call.url), payload: [UInt8](call.payload),
                metadata: call.dtmMetadata.metadata(headers: call.headers), options: options)
            return BranchResult(.success)
        } catch let error as RPCError {
            let result = DtmResult(grpcCode: error.code)
            return BranchResult(result, result == .error ? "\(error.code): \(error.message)" : error.message)
        } catch {
            return BranchResult(.error, "\(error)")
        }
    }
}

/// The SDK's own branch calls (a TCC Try), to the in-process branch services.
struct InProcessBranchCaller: BranchCaller {
    let client: GRPCClient<InProcessTransport.Client>

    func call(_ url: GrpcBranchURL, payload: [UInt8], metadata: DtmMetadata) async throws -> [UInt8] {
        try await client.callRaw(url, payload: payload, metadata: metadata.metadata())
    }
}
