public import DTMWire
import Foundation
import GRPCCore

/// A two-phase message (dtm's MSG): add the branches, then `submit` — or `prepare` with a
/// QueryPrepared URL first, run the local transaction, then `submit` (`doAndSubmit` does all).
public struct Msg: Sendable {
    /// The global transaction id (from `DtmClient.newGid()` or the application's own).
    public let gid: String
    /// dtm's transaction options.
    public var options = TransOptions()
    /// Seconds to wait after submit before calling the branches.
    public var delay: Int64 = 0
    private var steps: [[String: String]] = []
    private var payloads: [Data] = []

    /// An empty message with the id `gid`.
    public init(gid: String) { self.gid = gid }

    /// Adds a branch: `action` is `<server>/pkg.Svc/Method`, called with `payload`.
    public mutating func add(_ action: String, _ payload: some BranchPayload) throws {
        steps.append(["action": action])
        payloads.append(Data(try payload.payloadBytes()))
    }

    /// Adds a branch per subscriber of `topic` (dtm's `AddTopic`): dtm sends `payload` to every
    /// URL subscribed to it when the message runs.
    public mutating func addTopic(_ topic: String, _ payload: some BranchPayload) throws {
        try add(msgTopicScheme + topic, payload)
    }

    /// Registers the message as prepared; dtm asks `queryPrepared` if it is not submitted in time.
    public func prepare(_ client: DtmClient, queryPrepared: String) async throws {
        try await client.send(.prepare, request(queryPrepared: queryPrepared))
    }

    /// Submits the message: dtm calls every branch until each succeeds.
    public func submit(_ client: DtmClient) async throws {
        try await client.send(.submit, request(queryPrepared: ""))
    }

    /// Prepares, runs `body` (the local transaction), then submits, as dtm's Go `DoAndSubmit`:
    /// - `body` throws `DtmError.failure`: the message is aborted;
    /// - `body` throws another error (did the local transaction commit?): `queryPrepared` is asked,
    ///   as dtm would ask it; FAILURE aborts the message, success submits it, another error
    ///   leaves it prepared for dtm to ask again later.
    ///
    /// What `body` threw is rethrown in every case, even when the message was submitted or the
    /// Abort failed too. With `DTMBarrier`, `doAndSubmit(_:queryPrepared:database:_:)` runs
    /// `body` behind the msg's barrier, which `queryPrepared` answers from.
    public func doAndSubmit(_ client: DtmClient, queryPrepared: String, _ body: () async throws -> Void) async throws {
        try await prepare(client, queryPrepared: queryPrepared)
        let abort = try request(queryPrepared: queryPrepared)
        do {
            try await body()
        } catch let bodyError {
            if case .failure = bodyError as? DtmError {
                try? await client.send(.abort, abort)
                throw bodyError
            }
            do {
                _ = try await client.callBranch(url: queryPrepared, payload: [], gid: gid, transType: "msg",
                                                branchID: MsgLocalTransaction.branchID, op: MsgLocalTransaction.op)
            } catch DtmError.failure {
                try? await client.send(.abort, abort)
                throw bodyError
            } catch {
                throw bodyError  // not known yet: dtm asks queryPrepared itself later
            }
            try? await submit(client)
            throw bodyError
        }
        try await submit(client)
    }

    private func request(queryPrepared: String) throws -> Dtmgimp_DtmRequest {
        try transactionRequest(gid: gid, transType: "msg", steps: steps, payloads: payloads, options: options,
                               custom: delay > 0 ? ["delay": delay] : nil, queryPrepared: queryPrepared)
    }
}

/// A SAGA: actions in order (or concurrently by branch orders), compensations on failure.
public struct Saga: Sendable {
    /// The global transaction id.
    public let gid: String
    /// dtm's transaction options.
    public var options = TransOptions()
    /// Run steps concurrently, ordered by `addBranchOrder`.
    public var concurrent = false
    private var steps: [[String: String]] = []
    private var payloads: [Data] = []
    private var orders: [String: [Int]] = [:]

    /// An empty saga with the id `gid`.
    public init(gid: String) { self.gid = gid }

    /// Adds a step: `action` and its `compensate`, both `<server>/pkg.Svc/Method`.
    public mutating func add(action: String, compensate: String, _ payload: some BranchPayload) throws {
        steps.append(["action": action, "compensate": compensate])
        payloads.append(Data(try payload.payloadBytes()))
    }

    /// Step `step` (0-based) starts after the steps `after` succeeded (concurrent sagas).
    public mutating func addBranchOrder(_ step: Int, after: [Int]) {
        orders[String(step)] = after
    }

    /// Submits the saga: dtm runs the actions and, after a FAILURE, the compensations.
    public func submit(_ client: DtmClient) async throws {
        let custom: [String: Any]? = concurrent ? ["concurrent": true, "orders": orders] : nil
        try await client.send(.submit, try transactionRequest(gid: gid, transType: "saga", steps: steps, payloads: payloads, options: options, custom: custom))
    }
}

/// A TCC global transaction in progress: `callBranch` registers a branch's confirm and cancel,
/// then calls its Try.
public final class Tcc: Sendable {
    /// The global transaction id.
    public let gid: String
    let client: DtmClient
    /// The branch these branches are nested in (empty at the top): their ids are it plus 01, 02, …
    let parentBranchID: String
    private let branchCounter = Counter()

    init(gid: String, client: DtmClient, parentBranchID: String = "") {
        self.gid = gid
        self.client = client
        self.parentBranchID = parentBranchID
    }

    /// The TCC transaction a Try handler belongs to, to call sub-branches from it (dtm's
    /// `TccFromGrpc`): `context` is the Try's (`dtm-*` metadata), `client` a connection to the dtm
    /// it names (`context.dtm`). Sub-branch ids are the Try's branch id plus 01, 02, …
    public convenience init(nestedIn context: BranchContext, client: DtmClient) throws {
        guard context.transType == "tcc", !context.gid.isEmpty, !context.branchID.isEmpty else {
            throw DtmError.failure("a nested TCC needs a TCC branch's context (trans_type tcc, gid and branch_id), got \(context)")
        }
        self.init(gid: context.gid, client: client, parentBranchID: context.branchID)
    }

    /// Registers (confirm, cancel) for a new branch, then calls `tryURL` with `payload`; returns
    /// the Try's reply.
    @discardableResult
    public func callBranch(_ payload: some BranchPayload, try tryURL: String, confirm: String, cancel: String) async throws -> [UInt8] {
        let branchID = parentBranchID + String(format: "%02d", branchCounter.next())
        let bytes = try payload.payloadBytes()
        try await client.registerBranch(.with {
            $0.gid = gid
            $0.transType = "tcc"
            $0.branchID = branchID
            $0.op = "try"
            $0.data = ["confirm": confirm, "cancel": cancel]
            $0.busiPayload = Data(bytes)
        })
        return try await client.callBranch(url: tryURL, payload: bytes, gid: gid, transType: "tcc", branchID: branchID, op: "try")
    }
}

/// Runs a TCC transaction: prepares `gid`, runs `body` (which calls the branches' Try), submits;
/// if `body` throws, aborts so dtm cancels every registered branch, and rethrows what `body`
/// threw (even when the Abort fails too).
public func tccGlobalTransaction(_ client: DtmClient, gid: String, options: TransOptions = TransOptions(), _ body: (Tcc) async throws -> Void) async throws {
    let request = try transactionRequest(gid: gid, transType: "tcc", steps: [], payloads: [], options: options)
    try await client.send(.prepare, request)
    try await client.abortingOnError(request) { try await body(Tcc(gid: gid, client: client)) }
    try await client.send(.submit, request)
}

/// Registers an XA branch: dtm calls `url` with op commit after submit, rollback after abort.
public func registerXaBranch(_ client: DtmClient, gid: String, branchID: String, url: String, _ payload: some BranchPayload) async throws {
    try await client.registerBranch(.with {
        $0.gid = gid
        $0.transType = "xa"
        $0.branchID = branchID
        $0.op = "action"
        $0.data = ["url": url]
        $0.busiPayload = Data(try payload.payloadBytes())
    })
}

/// Prepares, submits or aborts an XA global transaction `gid`; if `body` throws, aborts and
/// rethrows what `body` threw (even when the Abort fails too).
public func xaGlobalTransaction(_ client: DtmClient, gid: String, options: TransOptions = TransOptions(), _ body: () async throws -> Void) async throws {
    let request = try transactionRequest(gid: gid, transType: "xa", steps: [], payloads: [], options: options)
    try await client.send(.prepare, request)
    try await client.abortingOnError(request, body)
    try await client.send(.submit, request)
}

func transactionRequest(
    gid: String, transType: String, steps: [[String: String]], payloads: [Data], options: TransOptions,
    custom: [String: Any]? = nil, queryPrepared: String = ""
) throws -> Dtmgimp_DtmRequest {
    let stepsJSON = steps.isEmpty ? "" : String(decoding: try JSONSerialization.data(withJSONObject: steps, options: [.withoutEscapingSlashes]), as: UTF8.self)
    let customJSON = try custom.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
    return .with {
        $0.gid = gid
        $0.transType = transType
        $0.steps = stepsJSON
        $0.binPayloads = payloads
        $0.customedData = customJSON
        $0.queryPrepared = queryPrepared
        $0.transOptions = options
    }
}

/// Branch ids 01, 02, … of one TCC transaction.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}
