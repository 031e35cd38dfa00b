import ArgumentParser
import Invokers
import DTMWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import PostgresNIO
import Synchronization

/// `dtm-bench grpc`: durable 2-branch msg transactions per second through dtmd, and in the same
/// run the raw ceiling: the same clients making the same three RPCs straight to the branch server.
struct GrpcBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpc",
        abstract: "Benchmark dtmd over gRPC: WaitResult msg transactions vs. the raw three-RPC ceiling.")

    @Option(help: "Concurrent clients.")
    var clients: Int = 64

    @Option(help: "Seconds each phase measures (after one second of warm-up).")
    var seconds: Double = 10

    @Option(help: "The dtmd executable (default: next to dtm-bench).")
    var dtmd: String?

    @Option(help: "dtmd's LogLevel during the run.")
    var logLevel = "warning"

    @Flag(help: "Run dtmd without fsync (not a durable measurement).")
    var noSync = false

    @Option(help: "Call branches on this 127.0.0.1 port (e.g. a grpc-go or grpcio server) instead of the built-in Swift one.")
    var branchPort: Int?

    @Option(help: "The transactions: msg or saga (2 branches each, WaitResult).")
    var mode = "msg"

    @Option(help: "Also measure dtmd on this PostgreSQL (host:port), one node and then two nodes sharing it, each phase in a fresh schema that is dropped after it.")
    var postgres: String?

    @Option(help: "The PostgreSQL database (it must exist).")
    var postgresDb = "dtm"

    @Option(help: "The PostgreSQL user (trust or password in PGPASSWORD).")
    var postgresUser = "postgres"

    func validate() throws {
        guard ["msg", "saga"].contains(mode) else { throw ValidationError("--mode must be msg or saga") }
        if let postgres { _ = try Self.hostPort(postgres) }
    }

    static func hostPort(_ text: String) throws -> (host: String, port: Int) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw ValidationError("--postgres must be host:port, got '\(text)'")
        }
        return (String(parts[0]), port)
    }

    func run() async throws {
        let busi = BenchBranchServer()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await busi.server.serve() }
            defer { busi.server.beginGracefulShutdown() }
            guard let builtInPort = try await busi.server.listeningAddress?.ipv4?.port else {
                throw ValidationError("the branch server did not start")
            }
            let busiPort = branchPort ?? builtInPort
            print("dtm-bench grpc: \(mode), \(clients) clients, \(seconds) s per phase, dtmd fsync=\(!noSync), LogLevel \(logLevel), branches on \(branchPort.map { "127.0.0.1:\($0)" } ?? "the built-in Swift server"), \(ProcessInfo.processInfo.activeProcessorCount) cores")

            // As dtmd calls branches: a call made while the connection is being set up waits for it.
            var rawOptions = CallOptions.defaults
            rawOptions.waitForReady = true
            let options = rawOptions
            let raw = try await measure(targets: [busiPort], answeringServerPings: branchPort != nil) { client in
                for method in ["Submit", "TransOut", "TransIn"] {
                    try await client.unary(
                        request: ClientRequest(message: BenchBranchServer.payload),
                        descriptor: MethodDescriptor(fullyQualifiedService: "busi.Busi", method: method),
                        serializer: RawBytesCoding(), deserializer: RawBytesCoding(), options: options
                    ) { _ = try $0.message }
                }
            }
            report("raw ceiling (3 RPCs, no coordinator)", raw)

            let lmdb = try await coordinated(label: "dtmd \(mode) on LMDB", busiPort: busiPort, nodes: ["STORE_DRIVER": "lmdb"], count: 1)
            print(String(format: "dtmd / raw ceiling:        %5.1f %%", 100 * lmdb.rate / raw.rate))
            if let postgres {
                let (host, port) = try Self.hostPort(postgres)
                let database = PostgresBenchDatabase(host: host, port: port, user: postgresUser, database: postgresDb)
                for count in [1, 2] {
                    let schema = "dtm_bench_\(getpid())_\(count)"
                    let store = ["STORE_DRIVER": "postgres", "STORE_HOST": host, "STORE_PORT": String(port), "STORE_USER": postgresUser,
                                 "STORE_DB": postgresDb, "STORE_SCHEMA": schema]
                    let result = try await coordinated(
                        label: "dtmd \(mode) on PostgreSQL, \(count) node\(count == 1 ? "" : "s")", busiPort: busiPort, nodes: store, count: count)
                    try await database.drop(schema: schema)
                    print(String(format: "  / LMDB:                  %5.1f %%", 100 * result.rate / lmdb.rate))
                }
            }
            guard branchPort != nil || busi.calls.count.load(ordering: .relaxed) > 0 else { throw ValidationError("no branch calls arrived") }
        }
    }

    /// 2-branch WaitResult transactions through `count` dtmd nodes started with `nodes` in their
    /// environment (the clients spread over them); reports and returns the measurement.
    private func coordinated(label: String, busiPort: Int, nodes environment: [String: String], count: Int) async throws -> Result {
        let servers = try (0..<count).map { _ in try DtmdProcess(executable: dtmd, logLevel: logLevel, noSync: noSync, environment: environment) }
        defer { for server in servers { server.stop() } }
        for server in servers { try await server.waitUntilServing() }
        let branch = { (method: String) in "127.0.0.1:\(busiPort)/busi.Busi/\(method)" }
        let steps = mode == "saga"
            ? #"[{"action":"\#(branch("TransOut"))","compensate":"\#(branch("TransOutRevert"))"},{"action":"\#(branch("TransIn"))","compensate":"\#(branch("TransInRevert"))"}]"#
            : #"[{"action":"\#(branch("TransOut"))"},{"action":"\#(branch("TransIn"))"}]"#
        let transType = mode
        let firstRoundFailures = Atomic<Int>(0)
        let result = try await measure(targets: servers.map(\.grpcPort), cpu: {
            let used = servers.compactMap { $0.cpuSeconds() }
            return used.count == servers.count ? used.reduce(0, +) : nil
        }) { client in
            let dtm = Dtmgimp_Dtm.Client(wrapping: client)
            let request = Dtmgimp_DtmRequest.with {
                $0.gid = UUID().uuidString
                $0.transType = transType
                $0.steps = steps
                $0.binPayloads = [Data(BenchBranchServer.payload), Data(BenchBranchServer.payload)]
                $0.transOptions.waitResult = true
            }
            do {
                _ = try await dtm.submit(request: ClientRequest(message: request))
            } catch let error as RPCError where error.code == .aborted {
                // WaitResult's FAILURE: the first round did not finish the transaction.
                if firstRoundFailures.add(1, ordering: .relaxed).newValue <= 3 { print("first round failed: \(error.message)") }
                throw error
            }
        }
        report("\(label), 2 branches, WaitResult", result)
        if let cpu = result.cpuSeconds, result.transactions > 0 {
            // Steadier than tx/s on a shared, noisy machine: what one transaction costs dtmd.
            print(String(format: "  dtmd CPU per transaction: %5.0f µs (user + system, measured phase, all nodes)", cpu * 1e6 / Double(result.transactions)))
        }
        print("  failed first rounds:      \(firstRoundFailures.load(ordering: .relaxed))")
        return result
    }

    struct Result {
        let transactions: Int
        let rate: Double
        let latencies: [Duration]
        let failures: Int
        /// CPU seconds the process `measure` was given used during the measured seconds.
        let cpuSeconds: Double?
    }

    /// Runs `clients` loops of `body`, spread over one HTTP/2 connection to each of `targets`
    /// (ports on 127.0.0.1); one second of warm-up, then `seconds` measured.
    /// `answeringServerPings`: connect as dtmd connects to branches (grpc-go and C-core servers
    /// ping once per call, which grpc-swift's default connection limits).
    /// `cpu`: a process's CPU seconds so far, sampled when the measured seconds start and end.
    private func measure(
        targets ports: [Int], answeringServerPings: Bool = false, cpu: (@Sendable () -> Double?)? = nil,
        _ body: @escaping @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void
    ) async throws -> Result {
        let connections = try ports.map { port in
            guard let address = HostPort("127.0.0.1:\(port)") else { throw ValidationError("port \(port) is not a port") }
            let transport = answeringServerPings
                ? try GrpcBranchInvoker.transport(to: address)
                : try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            return GRPCClient(transport: transport)
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in connections { group.addTask { try await connection.runConnections() } }
            defer { for connection in connections { connection.beginGracefulShutdown() } }
            let start = ContinuousClock.now + .seconds(1)
            let end = start + .seconds(seconds)
            async let cpuUsed: Double? = {
                guard let cpu else { return nil }
                try await Task.sleep(until: start)
                let before = cpu()
                try await Task.sleep(until: end)
                guard let before, let after = cpu() else { return nil }
                return after - before
            }()
            let perClient = try await withThrowingTaskGroup(of: ([Duration], Int).self) { clientsGroup in
                for index in 0..<clients {
                    let client = connections[index % connections.count]
                    clientsGroup.addTask {
                        var latencies = [Duration]()
                        var failures = 0
                        while ContinuousClock.now < end {
                            let began = ContinuousClock.now
                            do {
                                try await body(client)
                            } catch {
                                failures += 1
                                if failures <= 2 { print("error: \(error)") }
                            }
                            if began >= start, ContinuousClock.now <= end { latencies.append(ContinuousClock.now - began) }
                        }
                        return (latencies, failures)
                    }
                }
                return try await clientsGroup.reduce(into: [([Duration], Int)]()) { $0.append($1) }
            }
            let latencies = perClient.flatMap(\.0).sorted()
            return Result(
                transactions: latencies.count, rate: Double(latencies.count) / seconds,
                latencies: latencies, failures: perClient.map(\.1).reduce(0, +), cpuSeconds: try await cpuUsed)
        }
    }

    private func report(_ name: String, _ result: Result) {
        func percentile(_ p: Double) -> String {
            guard !result.latencies.isEmpty else { return "-" }
            let index = min(result.latencies.count - 1, Int(Double(result.latencies.count) * p))
            return milliseconds(result.latencies[index])
        }
        print(String(format: "%-58@ %8.0f tx/s  p50 %@ ms  p99 %@ ms  (%d tx, %d errors)",
                     name as NSString, result.rate, percentile(0.5) as NSString, percentile(0.99) as NSString,
                     result.transactions, result.failures))
    }
}

/// The benchmark's branch service: answers `/busi.Busi/{Submit,TransOut,TransIn}` with success.
final class BenchBranchServer: Sendable {
    static let payload: [UInt8] = Array(#"{"amount":30,"user_id":1}"#.utf8)
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let calls = CallCounter()

    init() {
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        let counter = calls
        for method in ["Submit", "TransOut", "TransIn"] {
            router.registerHandler(
                forMethod: MethodDescriptor(fullyQualifiedService: "busi.Busi", method: method),
                deserializer: RawBytesCoding(), serializer: RawBytesCoding()
            ) { request, _ in
                for try await _ in request.messages {}
                counter.count.add(1, ordering: .relaxed)
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
        server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            router: router)
    }
}

/// Calls answered by the benchmark's branch server.
final class CallCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// dtmd started for the benchmark with a fresh data directory, configured through environment
/// variables, stopped (SIGTERM) at the end.
final class DtmdProcess: @unchecked Sendable {
    let process = Process()
    let grpcPort: Int
    let directory: String

    private let ownsDirectory: Bool

    /// Starts dtmd on `dataDirectory`, or on a fresh directory that `stop()` removes, with
    /// `environment` added to its own (e.g. the STORE_* keys of a PostgreSQL store).
    init(executable: String?, logLevel: String, noSync: Bool, dataDirectory: String? = nil, environment extra: [String: String] = [:]) throws {
        let path = executable ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("dtmd").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ValidationError("dtmd not found at \(path): build it (swift build -c release --product dtmd) or pass --dtmd")
        }
        ownsDirectory = dataDirectory == nil
        directory = dataDirectory ?? NSTemporaryDirectory() + "dtm-bench-dtmd-\(getpid())-\(UUID().uuidString.prefix(8))"
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
        // Below the ephemeral port range: polling a port in it with connects can self-connect and take it.
        grpcPort = Int.random(in: 20000..<30000)
        process.executableURL = URL(fileURLWithPath: path)
        var environment = ProcessInfo.processInfo.environment
        environment["STORE_PATH"] = directory
        environment["STORE_DURABILITY"] = noSync ? "nosync" : "sync"
        environment["GRPC_PORT"] = String(grpcPort)
        environment["HTTP_PORT"] = String(grpcPort + 1)
        environment["LISTEN_ADDRESS"] = "127.0.0.1"
        environment["LOG_LEVEL"] = logLevel
        environment.merge(extra) { $1 }
        process.environment = environment
        try process.run()
    }

    /// Waits until dtmd answers NewGid. Polls the port with plain connects first: a gRPC client
    /// that fails to connect backs off for a second, which would be measured as startup time.
    func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !portAccepts() {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw ValidationError("dtmd did not open its gRPC port (exit status \(process.isRunning ? 0 : process.terminationStatus))")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: grpcPort), transportSecurity: .plaintext)
        let client = GRPCClient(transport: transport)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.runConnections() }
            defer { client.beginGracefulShutdown() }
            let dtm = Dtmgimp_Dtm.Client(wrapping: client)
            for _ in 0..<200 {
                if (try? await dtm.newGid(request: ClientRequest(message: .init()))) != nil { return }
                guard process.isRunning else { throw ValidationError("dtmd exited with \(process.terminationStatus)") }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw ValidationError("dtmd did not start serving")
        }
    }

    private func portAccepts() -> Bool {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(grpcPort).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// The CPU seconds (user + system) dtmd has used so far, from `/proc/PID/stat`; nil where that
    /// cannot be read.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let nameEnd = stat.lastIndex(of: ")") else { return nil }
        // After the command name: state is field 3, utime 14, stime 15 (in clock ticks).
        let fields = stat[stat.index(after: nameEnd)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// `dtm-bench restart`: how long dtmd takes from process start to answering NewGid on an
/// existing data directory (e.g. the 1M-event log `dtm-bench log --directory D` leaves in D/replay).
struct RestartBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart", abstract: "Time from starting dtmd on existing data to its first answer.")

    @Option(help: "The data directory (Store.Path) to start dtmd on.")
    var data: String

    @Option(help: "The dtmd executable (default: next to dtm-bench).")
    var dtmd: String?

    @Option(help: "How many starts to time.")
    var runs = 3

    func run() async throws {
        guard FileManager.default.fileExists(atPath: data + "/data.mdb") else {
            throw ValidationError("no event log in \(data)")
        }
        var times = [Duration]()
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let server = try DtmdProcess(executable: dtmd, logLevel: "warning", noSync: false, dataDirectory: data)
            try await server.waitUntilServing()
            times.append(ContinuousClock.now - start)
            server.stop()
        }
        print("dtmd start to first NewGid answer on \(data): " + times.map { "\(milliseconds($0)) ms" }.joined(separator: ", "))
    }
}

/// The PostgreSQL the benchmark's dtmd nodes share: each phase's schema is dropped after it.
struct PostgresBenchDatabase {
    let host: String
    let port: Int
    let user: String
    let database: String

    func drop(schema: String) async throws {
        let logger = Logger(label: "dtm-bench")
        let configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: ProcessInfo.processInfo.environment["PGPASSWORD"],
            database: database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(schema)\" CASCADE"), logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
