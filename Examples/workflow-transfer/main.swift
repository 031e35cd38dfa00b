// A transfer as a dtm workflow written in Swift: ordinary code calling two gRPC branches, with
// a rollback callback for the first. dtm records each step, so when the workflow stops half-way
// (TransIn unavailable), dtm calls the application back and the same code resumes it without
// calling TransOut again.
//
//   workflow-transfer --dtm localhost:36790 --listen 127.0.0.1:8092                  (gRPC)
//   workflow-transfer --dtm http://localhost:36789/api/dtmsvr --listen 127.0.0.1:8092 (HTTP)
//
// It serves the bank's branches and the workflow callback itself — over gRPC (`bank.Bank`,
// `workflow.Workflow`) or, when --dtm is dtm's HTTP API, over HTTP (`/bank/…`,
// `/workflow/resume`, with Hummingbird) — runs three transfers, and exits 0 when the
// balances are right.
import ArgumentParser
import DTMClient
import DTMClientHummingbird
import DTMWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

@main
struct WorkflowTransfer: AsyncParsableCommand {
    @Option(help: "dtm's gRPC address (host:port or etcd://…/dtmservice).") var dtm = "localhost:36790"
    @Option(help: "Where the bank and the workflow callback listen (host:port), as dtm dials them.") var listen = "127.0.0.1:8092"

    func run() async throws {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen must be host:port") }
        let bank = Bank()
        let host = String(parts[0])
        if dtm.hasPrefix("http://") || dtm.hasPrefix("https://") {
            try await withDtmClient(target: dtm) { client in
                let workflows = Workflows(client: client, callbackURL: "http://\(listen)/workflow/resume")
                try register(workflows, bank: bank, branchURL: { [listen] in "http://\(listen)/bank/\($0)" })
                let app = Application(router: bank.router(resuming: workflows), configuration: .init(address: .hostname(host, port: port)))
                let services = ServiceGroup(services: [app], logger: Logger(label: "workflow-transfer"))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await services.run() }
                    try await transfers(workflows, client: client, bank: bank)
                    await services.triggerGracefulShutdown()
                }
            }
        } else {
            try await withDtmClient(target: dtm) { client in
                let workflows = Workflows(client: client, callbackHost: listen)
                try register(workflows, bank: bank, branchURL: { [listen] in "\(listen)/bank.Bank/\($0)" })
                let server = GRPCServer(
                    transport: HTTP2ServerTransport.Posix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                    services: [bank, workflows.service])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await server.serve() }
                    defer { server.beginGracefulShutdown() }
                    try await transfers(workflows, client: client, bank: bank)
                }
            }
        }
        print("workflow transfer OK")
    }

    /// The workflow: take the amount out of one account (put it back on rollback), then into the other.
    func register(_ workflows: Workflows, bank: Bank, branchURL url: @escaping @Sendable (String) -> String) throws {
        var options = WorkflowOptions()
        options.transOptions.retryInterval = 1  // dtm calls back a second after an unfinished run
        try workflows.register("transfer", options: options) { workflow, payload in
            let transfer = try JSONDecoder().decode(Transfer.self, from: Data(payload))
            try await workflow.newBranch()
                .onRollback { _ in
                    bank.add(transfer.amount, to: transfer.from)
                    print("rolled back: \(transfer.amount) back to account \(transfer.from)")
                }
                .call(url("TransOut"), payload)
            try await workflow.newBranch()
                .onCommit { _ in bank.transferDone.withLock { _ = $0.insert(transfer.amount) } }
                .call(url("TransIn"), payload)
            return Array("moved \(transfer.amount)".utf8)
        }
    }

    func transfers(_ workflows: Workflows, client: DtmClient, bank: Bank) async throws {
        func payload(_ transfer: Transfer) throws -> [UInt8] { [UInt8](try JSONEncoder().encode(transfer)) }
        try bank.expect([1: 100, 2: 0], "opening balances")

        // 1. Both steps succeed; the workflow's result comes back.
        let result = try await workflows.execute("transfer", gid: try await client.newGid(), payload: try payload(Transfer(from: 1, to: 2, amount: 30)))
        print("result: \(String(decoding: result, as: UTF8.self))")
        try bank.expect([1: 70, 2: 30], "after transferring 30")

        // 2. TransIn refuses (FAILURE): the rollback callback returns what TransOut took.
        do {
            try await workflows.execute("transfer", gid: try await client.newGid(), payload: try payload(Transfer(from: 1, to: 2, amount: 40, refused: true)))
            throw ValidationError("a refused transfer succeeded")
        } catch DtmError.failure(let reason) {
            print("rolled back: \(reason)")
        }
        try bank.expect([1: 70, 2: 30], "after a refused transfer")

        // 3. TransIn is unavailable the first time: the run stops unfinished, dtm calls the
        //    callback, and the workflow resumes from its record (TransOut is not called again).
        do {
            try await workflows.execute("transfer", gid: try await client.newGid(), payload: try payload(Transfer(from: 1, to: 2, amount: 20, unavailableOnce: true)))
            throw ValidationError("a transfer with TransIn unavailable finished at once")
        } catch let error where !(error is DtmError) {
            print("unfinished: \(error); waiting for dtm to resume it")
        }
        for _ in 0..<300 where !bank.transferDone.withLock({ $0.contains(20) }) { try await Task.sleep(for: .milliseconds(100)) }
        try bank.expect([1: 50, 2: 50], "after the resumed transfer")
        guard bank.calls.withLock({ $0["TransOut"] }) == 3 else { throw ValidationError("TransOut was called again on resume") }
    }
}

/// What the workflow moves, and how its TransIn behaves.
struct Transfer: Codable {
    var from: Int
    var to: Int
    var amount: Int
    var refused = false
    var unavailableOnce = false
}

/// An in-memory bank serving `bank.Bank/TransOut` and `TransIn` (raw JSON payloads).
final class Bank: RegistrableRPCService, Sendable {
    private let balances = Mutex([1: 100, 2: 0])
    let calls = Mutex<[String: Int]>([:])
    let transferDone = Mutex<Set<Int>>([])
    private let unavailableGiven = Mutex<Set<String>>([])

    func add(_ amount: Int, to user: Int) { balances.withLock { $0[user, default: 0] += amount } }

    static let methods = ["TransOut", "TransIn"]

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for method in Self.methods {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "bank.Bank", method: method),
                deserializer: RawBytesCoding(), serializer: RawBytesCoding()
            ) { request, _ in
                let payload = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
                return try await dtmBranch(request.metadata) { context in
                    try self.handle(method, payload: payload, context: context)
                    return StreamingServerResponse(single: ServerResponse(message: []))
                }
            }
        }
    }

    /// The same branches over HTTP (`/bank/<method>`), and the workflow callback.
    func router(resuming workflows: Workflows) -> Router<BasicRequestContext> {
        let router = Router()
        for method in Self.methods {
            router.dtmBranch(RouterPath("/bank/\(method)")) { request, _, context in
                let payload = try await request.body.collect(upTo: 1 << 20)
                try self.handle(method, payload: Array(buffer: payload), context: context)
            }
        }
        router.dtmWorkflowCallback("/workflow/resume", workflows)
        return router
    }

    /// One branch call, over gRPC or HTTP alike.
    func handle(_ method: String, payload: [UInt8], context: BranchContext?) throws {
        let transfer = try JSONDecoder().decode(Transfer.self, from: Data(payload))
        calls.withLock { $0[method, default: 0] += 1 }
        if method == "TransOut" {
            add(-transfer.amount, to: transfer.from)
        } else if transfer.refused {
            throw DtmError.failure("account \(transfer.to) refuses transfers")
        } else if transfer.unavailableOnce, unavailableGiven.withLock({ $0.insert(context?.gid ?? "").inserted }) {
            throw TransInRestarting()
        } else {
            add(transfer.amount, to: transfer.to)
        }
        print("\(method) \(transfer.amount) (gid \(context?.gid ?? "-"), branch \(context?.branchID ?? "-"))")
    }

    func expect(_ expected: [Int: Int], _ when: String) throws {
        let balances = balances.withLock { $0 }
        print("balances \(when): 1 → \(balances[1] ?? 0), 2 → \(balances[2] ?? 0)")
        guard balances == expected else { throw ValidationError("expected \(expected) \(when), found \(balances)") }
    }
}

/// TransIn's one outage: gRPC Unavailable (HTTP 500): an error dtm and the workflow retry.
struct TransInRestarting: Error, CustomStringConvertible, RPCErrorConvertible {
    var description: String { "TransIn is restarting" }
    var rpcErrorCode: RPCError.Code { .unavailable }
    var rpcErrorMessage: String { description }
}
