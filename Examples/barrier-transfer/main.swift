// A transfer between two accounts as a SAGA whose branches are guarded by dtm's barrier on
// SQLite: the balance changes and the barrier rows commit together, so dtm's retries, a
// compensation of an action that failed, and a branch that answers an error after committing
// all leave the balances right.
//
//   barrier-transfer --dtm localhost:36790 --listen 127.0.0.1:8091 --database ./bank.sqlite
//   barrier-transfer --dtm http://localhost:36789/api/dtmsvr --listen 127.0.0.1:8091   (HTTP)
//   barrier-transfer --dtm etcd://localhost:2379/dtmservice --etcd-ca ca.pem --etcd-cert c.pem --etcd-key c.key
//
// It serves the bank's branches itself (JSON payloads; gRPC `bank.Bank`, or HTTP `/bank/…` with
// Hummingbird when --dtm is dtm's HTTP API), runs three transfers against that dtm, prints the
// balances and exits 0 when they are right.
import ArgumentParser
import DTMBarrier
import DTMBarrierSQLite
import DTMClient
import DTMClientHummingbird
import DTMDiscovery
import DTMWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import Logging
import SQLiteNIO
import ServiceLifecycle
import Synchronization

@main
struct BarrierTransfer: AsyncParsableCommand {
    @Option(help: "dtm's gRPC address (host:port or etcd://…/dtmservice).") var dtm = "localhost:36790"
    @Option(help: "Where the bank's branches listen (host:port), as dtm dials them.") var listen = "127.0.0.1:8091"
    @Option(help: "The bank's SQLite database.") var database = "barrier-transfer.sqlite"
    @Option(help: "A token of dtmd's Auth.Tokens, when it requires one.") var token: String?
    @Option(help: "The CA (PEM) that signed dtmd's certificate, when dtmd speaks TLS.") var tlsCa: String?
    @Option(help: "For an etcd:// --dtm over TLS: the CA (PEM) that signed etcd's certificate.") var etcdCa: String?
    @Option(help: "For an etcd that wants client certificates: this client's certificate and key (PEM).") var etcdCert: String?
    @Option(help: "The key of --etcd-cert.") var etcdKey: String?

    func run() async throws {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen must be host:port") }
        let host = String(parts[0])
        try await SQLiteBarrierDatabase.withDatabase(storage: .file(path: database)) { database in
            let bank = try await Bank(database: database)
            let etcd = try EtcdAccess(caFile: etcdCa, certificateFile: etcdCert, keyFile: etcdKey)
            try await withDtmClient(target: dtm, token: token, tls: tlsCa.map { DtmClientTLS(caFile: $0) }, etcd: etcd) { client in
                if dtm.hasPrefix("http://") || dtm.hasPrefix("https://") {
                    let app = Application(router: bank.router(), configuration: .init(address: .hostname(host, port: port)))
                    let services = ServiceGroup(services: [app], logger: Logger(label: "barrier-transfer"))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await services.run() }
                        try await transfers(client, bank: bank, branchURL: { [listen] in "http://\(listen)/bank/\($0)" })
                        await services.triggerGracefulShutdown()
                    }
                } else {
                    let server = GRPCServer(
                        transport: HTTP2ServerTransport.Posix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                        services: [bank])
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await server.serve() }
                        defer { server.beginGracefulShutdown() }
                        try await transfers(client, bank: bank, branchURL: { [listen] in "\(listen)/bank.Bank/\($0)" })
                    }
                }
            }
        }
        print("barrier transfer OK")
    }

    func transfers(_ client: DtmClient, bank: Bank, branchURL url: (String) -> String) async throws {
        // WaitResult: Submit answers once dtm's first round is over, FAILURE unless it succeeded.
        func saga(_ transfer: Transfer, waitResult: Bool = true) async throws -> Saga {
            var saga = Saga(gid: try await client.newGid())
            saga.options.waitResult = waitResult
            saga.options.retryInterval = 1
            let payload = try JSONEncoder().encode(transfer)
            try saga.add(action: url("TransOut"), compensate: url("TransOutCompensate"), payload)
            try saga.add(action: url("TransIn"), compensate: url("TransInCompensate"), payload)
            return saga
        }
        try await bank.expect([1: 100, 2: 0], "opening balances")

        // 1. A plain transfer.
        try await saga(Transfer(from: 1, to: 2, amount: 30)).submit(client)
        try await bank.expect([1: 70, 2: 30], "after transferring 30")

        // 2. More than the balance: TransOut answers FAILURE and its local transaction rolls
        //    back; dtm then compensates it anyway, and the barrier sees a compensation of an
        //    action that never committed (a null compensation) and does nothing.
        do {
            try await saga(Transfer(from: 1, to: 2, amount: 500)).submit(client)
            throw ValidationError("a transfer of 500 out of 70 succeeded")
        } catch DtmError.failure {}
        try await bank.expect([1: 70, 2: 30], "after refusing 500")

        // 3. TransIn commits, then answers an error as if the reply were lost: dtm calls it again
        //    a second later, and the barrier answers success without adding the amount twice.
        let flaky = try await saga(Transfer(from: 1, to: 2, amount: 20, answersErrorAfterCommit: true), waitResult: false)
        try await flaky.submit(client)
        for _ in 0..<300 where bank.transInCalls(flaky.gid) < 2 { try await Task.sleep(for: .milliseconds(100)) }
        try await bank.expect([1: 50, 2: 50], "after a TransIn that was called \(bank.transInCalls(flaky.gid)) times")

        // 4. A deposit published as a msg to a topic: dtm sends it to every subscriber (here the
        //    bank's TransIn); a msg is never rolled back, and the barrier keeps it exactly-once.
        let topic = "deposits-\(try await client.newGid())"
        try await client.subscribe(topic: topic, url: url("TransIn"), remark: "the bank")
        var deposit = Msg(gid: try await client.newGid())
        deposit.options.waitResult = true
        try deposit.addTopic(topic, try JSONEncoder().encode(Transfer(from: 0, to: 2, amount: 5)))
        try await deposit.submit(client)
        try await client.unsubscribe(topic: topic, url: url("TransIn"))
        try await client.deleteTopic(topic)
        try await bank.expect([1: 50, 2: 55], "after a deposit to a topic")
    }
}

/// What a branch is asked to move.
struct Transfer: Codable {
    var from: Int
    var to: Int
    var amount: Int
    /// TransIn answers Unavailable once after committing (a reply lost on the way back).
    var answersErrorAfterCommit = false
}

/// The bank's gRPC service: four branches, each behind the barrier, on one SQLite database.
final class Bank: RegistrableRPCService, Sendable {
    let database: SQLiteBarrierDatabase
    /// How often TransIn was called, by gid.
    private let transIns = Mutex<[String: Int]>([:])

    /// The bank on `database`, with its two accounts opened afresh.
    init(database: SQLiteBarrierDatabase) async throws {
        self.database = database
        try await database.withTransaction { connection in
            _ = try await connection.query("CREATE TABLE IF NOT EXISTS accounts (user INTEGER PRIMARY KEY, balance INTEGER NOT NULL)", [])
            _ = try await connection.query("DELETE FROM accounts", [])
            _ = try await connection.query("INSERT INTO accounts (user, balance) VALUES (1, 100), (2, 0)", [])
        }
    }

    /// Each branch's change of the balances, made behind the call's barrier.
    private static let changes: [String: @Sendable (Transfer, SQLiteConnection) async throws -> Void] = [
        "TransOut": { transfer, connection in
            // Refused (FAILURE) when the balance is short: dtm rolls the saga back.
            let rows = try await connection.query(
                "UPDATE accounts SET balance = balance - ? WHERE user = ? AND balance >= ? RETURNING balance",
                [.integer(transfer.amount), .integer(transfer.from), .integer(transfer.amount)])
            if rows.isEmpty { throw DtmError.failure("insufficient balance in account \(transfer.from)") }
        },
        "TransOutCompensate": { transfer, connection in try await add(transfer.amount, to: transfer.from, connection) },
        "TransIn": { transfer, connection in try await add(transfer.amount, to: transfer.to, connection) },
        "TransInCompensate": { transfer, connection in try await add(-transfer.amount, to: transfer.to, connection) },
    ]

    /// The branches over gRPC: `bank.Bank/<method>`.
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for method in Self.changes.keys {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "bank.Bank", method: method),
                deserializer: RawBytesCoding(), serializer: RawBytesCoding()
            ) { request, _ in
                let payload = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
                return try await dtmBranch(request.metadata) { context in
                    try await self.handle(method, payload: payload, context: context)
                    return StreamingServerResponse(single: ServerResponse(message: []))
                }
            }
        }
    }

    /// The branches over HTTP: `/bank/<method>`.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        for method in Self.changes.keys {
            router.dtmBranch(RouterPath("/bank/\(method)")) { request, _, context in
                let payload = try await request.body.collect(upTo: 1 << 20)
                try await self.handle(method, payload: Array(buffer: payload), context: context)
            }
        }
        return router
    }

    /// One branch call: the payload's transfer, applied behind the call's barrier.
    func handle(_ method: String, payload: [UInt8], context: BranchContext?) async throws {
        guard let change = Self.changes[method] else { throw DtmError.failure("no branch \(method)") }
        let transfer = try JSONDecoder().decode(Transfer.self, from: Data(payload))
        let ran: Void? = try await BranchBarrier(context).call(on: database) { connection in try await change(transfer, connection) }
        print("\(method) \(transfer.amount): \(ran == nil ? "skipped by the barrier" : "done")")
        if method == "TransIn", let gid = context?.gid {
            let calls = transIns.withLock { calls in
                calls[gid, default: 0] += 1
                return calls[gid, default: 0]
            }
            if transfer.answersErrorAfterCommit, calls == 1 { throw ReplyLost() }
        }
    }

    private static func add(_ amount: Int, to user: Int, _ connection: SQLiteConnection) async throws {
        _ = try await connection.query("UPDATE accounts SET balance = balance + ? WHERE user = ?", [.integer(amount), .integer(user)])
    }

    func balances() async throws -> [Int: Int] {
        try await database.withTransaction { connection in
            var balances: [Int: Int] = [:]
            for row in try await connection.query("SELECT user, balance FROM accounts", []) {
                if let user = row.column("user")?.integer, let balance = row.column("balance")?.integer { balances[user] = balance }
            }
            return balances
        }
    }

    func expect(_ expected: [Int: Int], _ when: String) async throws {
        let balances = try await balances()
        print("balances \(when): 1 → \(balances[1] ?? 0), 2 → \(balances[2] ?? 0)")
        guard balances == expected else { throw ValidationError("expected \(expected) \(when), found \(balances)") }
    }

    func transInCalls(_ gid: String) -> Int { transIns.withLock { $0[gid, default: 0] } }
}

/// A reply lost after the branch committed: gRPC Unavailable (HTTP 500), which dtm retries.
struct ReplyLost: Error, CustomStringConvertible, RPCErrorConvertible {
    var description: String { "the reply was lost" }
    var rpcErrorCode: RPCError.Code { .unavailable }
    var rpcErrorMessage: String { description }
}
