public import DTMWire
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Resolves branch targets through service discovery, go-zero style: for `etcd://hosts/key` it
/// reads every value under `key/` (at most 32, as go-zero does) and then watches the prefix, so
/// the address set follows instances as they come and go; calls go round-robin over the set, and
/// an address whose call could not connect is skipped for a while. `k8s://namespace/service:port`
/// resolves through DNS as `service.namespace.svc.cluster.local:port`; plain `host:port` targets
/// are used as they are.
///
/// Run it as a service: it keeps one watch per etcd target and ends them on shutdown.
public final class DiscoveryResolver: TargetResolver, Service {
    private let watches = Mutex<[String: AddressSet]>([:])
    /// TLS and the account for every etcd this resolver reads.
    private let etcd: EtcdAccess
    private let started: AsyncStream<AddressSet>
    private let startedContinuation: AsyncStream<AddressSet>.Continuation
    private let logger: Logger
    /// How long an address that failed is skipped.
    let failurePause: Duration

    public init(etcd: EtcdAccess = .plain, failurePause: Duration = .seconds(5), logger: Logger = Logger(label: "swiftdtm.discovery")) {
        (started, startedContinuation) = AsyncStream.makeStream()
        self.etcd = etcd
        self.failurePause = failurePause
        self.logger = logger
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await set in self.started {
                    group.addTask { await set.follow() }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.startedContinuation.finish()
        }
    }

    public func address(for target: String) async throws -> HostPort {
        if let direct = HostPort(target) { return direct }
        switch try DiscoveryTarget(parsing: target) {
        case let .kubernetes(namespace, service, port):
            guard let address = HostPort("\(service).\(namespace).svc.cluster.local:\(port)") else {
                throw RequestError.invalidArgument("target '\(target)' is not a valid Kubernetes service")
            }
            return address
        case let .etcd(endpoints, key, user, password):
            let set = watches.withLock { watches in
                if let existing = watches[target] { return existing }
                let set = AddressSet(
                    client: EtcdClient(endpoints: endpoints, user: user, password: password, access: etcd), key: key,
                    failurePause: failurePause, logger: logger)
                watches[target] = set
                startedContinuation.yield(set)
                return set
            }
            return try await set.next()
        }
    }

    public func reportFailure(_ address: HostPort, of target: String) async {
        watches.withLock { $0[target] }?.markFailed(address)
    }
}

/// The live addresses under one etcd key, kept current by a watch.
final class AddressSet: Sendable {
    private struct State {
        var addresses: [String: HostPort] = [:]
        var loaded = false
        var turn = 0
        var failedUntil: [HostPort: ContinuousClock.Instant] = [:]
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    let client: EtcdClient
    let prefix: String
    private let failurePause: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(client: EtcdClient, key: String, failurePause: Duration, logger: Logger) {
        self.client = client
        self.prefix = key + "/"
        self.failurePause = failurePause
        self.logger = logger
    }

    /// The next address, round-robin, skipping recently failed ones unless all have failed.
    func next() async throws -> HostPort {
        if !state.withLock({ $0.loaded }) {
            try await load()
        }
        let now = ContinuousClock.now
        return try state.withLock { state in
            let all = state.addresses.keys.sorted().compactMap { state.addresses[$0] }
            guard !all.isEmpty else {
                throw RequestError.failure("no instance is registered under '\(prefix)' in etcd")
            }
            let healthy = all.filter { (state.failedUntil[$0] ?? now) <= now }
            let candidates = healthy.isEmpty ? all : healthy
            state.turn &+= 1
            return candidates[state.turn % candidates.count]
        }
    }

    func markFailed(_ address: HostPort) {
        let until = ContinuousClock.now + failurePause
        state.withLock { $0.failedUntil[address] = until }
    }

    /// Reads the prefix once (the first call of a target waits for it).
    @discardableResult
    private func load() async throws -> Int64 {
        let (pairs, revision) = try await client.range(prefix: prefix)
        state.withLock { state in
            state.addresses = [:]
            for (key, value) in pairs.prefix(32) {
                if let address = HostPort(value) { state.addresses[key] = address }
            }
            state.loaded = true
        }
        return revision
    }

    /// Keeps the set current: read, then watch from the next revision; on any error, read again.
    func follow() async {
        while !Task.isCancelled {
            do {
                let revision = try await load()
                for try await batch in try await client.watch(prefix: prefix, fromRevision: revision + 1) {
                    state.withLock { state in
                        for change in batch.changes {
                            switch change {
                            case let .put(key, value):
                                if let address = HostPort(value), state.addresses.count < 32 || state.addresses[key] != nil {
                                    state.addresses[key] = address
                                }
                            case let .delete(key):
                                state.addresses[key] = nil
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("watch of \(prefix) in etcd ended, watching again: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
