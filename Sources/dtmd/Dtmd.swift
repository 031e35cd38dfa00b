import ArgumentParser
import Coordinator
import DTMDiscovery
import DTMWire
import DtmConfiguration
import EventLog
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GrpcGateway
import HttpGateway
import AdminWeb
import LMDBStore
import PostgresStore
import TransactionStore
import Hummingbird
import Invokers
import Logging
import Metrics
import Modes
import Projections
import Prometheus
import ServiceLifecycle

/// dtmd: the SwiftDTM server. dtm's gRPC API on GrpcPort, its HTTP API on HttpPort, the event log
/// in LMDB under Store.Path. SIGTERM or SIGINT drain in-flight requests, flush the log and exit 0.
@main
struct Dtmd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtmd", abstract: "SwiftDTM: a dtm-compatible, event-sourced distributed transaction manager.")

    @Option(name: .customShort("c"), help: "A YAML config file with dtm's keys (default: the embedded defaults).")
    var config: String?

    @Flag(help: "Start a new log when Store.Path holds a data.mdb of 0 bytes (refused otherwise: it is damage, not a new log).")
    var acceptEmptyDataFile = false

    func run() async throws {
        var warnings = [String]()
        let settings: DtmdConfiguration
        do {
            settings = try DtmdConfiguration.load(file: config, warnings: &warnings)
        } catch {
            throw ValidationError("invalid configuration: \(error)")
        }
        let level = Logger.Level(rawValue: settings.logLevel.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "swiftdtm.dtmd")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        // dtm names its gin and grpc-go versions here; these are the libraries dtmd serves with.
        DtmMetrics.recordServerInfo(http: "hummingbird 2", grpc: "grpc-swift 2")
        for warning in warnings { logger.warning("\(warning)") }

        switch settings.storeDriver {
        case "postgres":
            let configuration = settings.postgresStore
            let store = try PostgresTransactionStore(configuration)
            // The connection pool runs for dtmd's whole life, around the services.
            try await withThrowingDiscardingTaskGroup { pool in
                pool.addTask { await store.run() }
                try await store.prepareSchema()
                logger.info("PostgreSQL store ready", metadata: [
                    "store": "\(configuration.description)",
                    "node": "\(configuration.node)"])
                try await serve(settings, store: store, storeService: [], registry: registry, logger: logger)
                pool.cancelAll()
            }
        default:
            var storeConfiguration = settings.lmdbStore
            storeConfiguration.acceptEmptyDataFile = acceptEmptyDataFile
            let store = try await LMDBTransactionStore.open(storeConfiguration)
            let lastSeq = try store.log.lastSeq()
            logger.info("event log open", metadata: ["path": "\(settings.storePath)", "last_seq": "\(lastSeq)"])
            try await serve(settings, store: store, storeService: [.init(service: StoreService(store: store, logger: logger))], registry: registry, logger: logger)
        }
    }

    /// Runs the gateways, the scheduler and the branch callers on `store` until SIGTERM or SIGINT;
    /// `storeService` (started first, stopped last) closes the store.
    func serve(
        _ settings: DtmdConfiguration, store: any TransactionStore, storeService: [ServiceGroupConfiguration.ServiceConfiguration],
        registry: PrometheusCollectorRegistry, logger: Logger
    ) async throws {

        var defaults = TransactionDefaults()
        defaults.timeoutToFail = settings.timeoutToFail
        defaults.retryInterval = settings.retryInterval
        defaults.requestTimeout = settings.requestTimeout
        let etcd: EtcdAccess
        do {
            etcd = try EtcdAccess(
                caFile: settings.etcdCACertFile, certificateFile: settings.etcdCertFile, keyFile: settings.etcdCertKeyFile,
                insecureSkipVerify: settings.etcdInsecureSkipVerify, user: settings.etcdUser, password: settings.etcdPass)
        } catch {
            throw ValidationError("invalid configuration: Etcd: \(error)")
        }
        let resolver = DiscoveryResolver(etcd: etcd)
        let branchTargets: BranchTargets
        let grpcOverTLS: TargetList
        do {
            branchTargets = try BranchTargets(
                ports: [settings.grpcPort, settings.httpPort], localHosts: LocalAddresses.names(),
                allow: settings.branchTargetsAllow, deny: settings.branchTargetsDeny)
            grpcOverTLS = try TargetList(settings.branchTLSGrpc, list: "BranchTLS.Grpc")
        } catch {
            throw ValidationError("invalid configuration: \(RequestError(error))")
        }
        let branchCA = settings.branchTLSCAFile.isEmpty ? nil : settings.branchTLSCAFile
        // Every call is checked again with what it is about to reach: discovery targets once
        // resolved, DNS names resolved when the rules need their addresses.
        let callCheck = CallTargetCheck(targets: branchTargets)
        let grpcInvoker = GrpcBranchInvoker(
            resolver: resolver, check: callCheck.verdict, usesTLS: { grpcOverTLS.matches($0.host) }, caFile: branchCA)
        let httpInvoker = HttpBranchInvoker(additionalCAFile: branchCA, check: callCheck.verdict)
        let alerts = settings.alertWebHook.isEmpty ? nil : (
            sender: WebHookAlerts(url: settings.alertWebHook, http: httpInvoker, timeout: .seconds(settings.requestTimeout)) as any AlertSender,
            retryLimit: settings.alertRetryLimit)
        // A node that dies leaves its claims to run out: on a shared store the others take over
        // after at most this long (a claim is renewed before every set of calls, each of which
        // lasts at most RequestTimeout).
        let roundLease: Duration = .seconds(max(5, settings.requestTimeout + 2))
        let coordinator = Coordinator(
            store: store, invoker: RoutingBranchInvoker(grpc: grpcInvoker, http: httpInvoker), defaults: defaults, alerts: alerts,
            roundLease: roundLease,
            branchTargets: branchTargets)

        let tokens = AccessTokens(settings.authTokens)
        if tokens.required { logger.info("authentication on: every request needs one of the \(settings.authTokens.count) configured tokens") }
        let security = try ListenerSecurity(settings)
        if security.isOn { logger.info("TLS on both ports\(settings.tlsClientCAFile.isEmpty ? "" : ", client certificates required")") }
        let grpcServer = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: settings.listenAddress, port: settings.grpcPort), transportSecurity: security.grpc),
            services: [DtmService(coordinator: coordinator), AdminService(store: store)],
            // The token check only when tokens are set: an interceptor costs every call a hop.
            interceptorPipeline: (tokens.required ? [.apply(AccessTokenInterceptor(tokens: tokens), to: .all)] : [])
                + [.apply(DtmMetricsInterceptor(), to: .services([Dtmgimp_Dtm.descriptor]))])
        let router = HttpApi.router(coordinator: coordinator, metrics: { registry.emitToBuffer() }, tokens: tokens)
        AdminPages.addRoutes(to: router, coordinator: coordinator, store: store, tokens: tokens)
        let http = Application(
            router: router,
            server: security.http,
            configuration: ApplicationConfiguration(address: .hostname(settings.listenAddress, port: settings.httpPort)),
            logger: Logger(label: "swiftdtm.http"))
        let scheduler = Scheduler(
            coordinator: coordinator, cronInterval: .milliseconds(Int64(settings.transCronInterval * 1000)),
            drainLimit: .seconds(settings.requestTimeout + 1))

        let certificateReload: [ServiceGroupConfiguration.ServiceConfiguration] = security.certificate.map { certificate in
            [.init(service: CertificateReloadOnHangup(
                certificate: certificate, files: "\(settings.tlsCertFile), \(settings.tlsKeyFile)", logger: logger))]
        } ?? []
        var registration: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if !settings.microServiceTarget.isEmpty {
            do {
                registration = [.init(service: try GoZeroRegistration(
                    target: settings.microServiceTarget, endpoint: settings.microServiceEndPoint, etcd: etcd))]
            } catch {
                throw ValidationError("invalid configuration: MicroService: \(error)")
            }
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Graceful shutdown stops services in reverse order: registration and the
                // gateways first (in-flight requests drain), then the scheduler (running rounds
                // finish), the branch callers, and last the log (flushed and closed).
                services: storeService + [
                    .init(service: resolver),
                    .init(service: grpcInvoker),
                    .init(service: httpInvoker),
                    .init(service: scheduler),
                    .init(service: GRPCServerService(server: grpcServer)),
                    .init(service: http),
                ] + certificateReload + registration,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.info("dtmd listening", metadata: ["grpc": "\(settings.listenAddress):\(settings.grpcPort)", "http": "\(settings.listenAddress):\(settings.httpPort)"])
        try await group.run()
        logger.info("dtmd stopped")
    }
}

/// Keeps the store open while dtmd runs; on graceful shutdown, once every service started after
/// it has stopped, flushes and closes it.
struct StoreService: Service {
    let store: LMDBTransactionStore
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        try await store.close()
        logger.info("event log flushed and closed")
    }
}
