import DTMWire
import Foundation
public import Logging
public import ServiceLifecycle

/// Registers dtmd in etcd exactly as go-zero registers a service: key `<key>/<lease id as signed
/// decimal>` with value `host:port`, under a lease of `ttl` seconds kept alive about every ttl/3;
/// when the lease is lost (etcd restarted, or it expired while unreachable) it registers again
/// with a new lease. etcd being down never stops dtmd: failures are logged and retried. Graceful
/// shutdown revokes the lease, so the key disappears at once.
public struct GoZeroRegistration: Service {
    let client: EtcdClient
    let key: String
    let endpoint: String
    let ttl: Int
    let logger: Logger

    /// `target` is the MicroService Target, e.g. `etcd://localhost:2379/dtmservice`; `etcd` says
    /// how to reach it (TLS, an account).
    public init(
        target: String, endpoint: String, etcd: EtcdAccess = .plain, ttl: Int = 10,
        logger: Logger = Logger(label: "swiftdtm.registration")
    ) throws {
        guard case let .etcd(endpoints, key, user, password) = try DiscoveryTarget(parsing: target) else {
            throw RequestError.invalidArgument("MicroService.Target '\(target)' must be an etcd:// or discov:// target")
        }
        guard HostPort(endpoint) != nil else {
            throw RequestError.invalidArgument("MicroService.EndPoint '\(endpoint)' must be host:port")
        }
        self.client = EtcdClient(endpoints: endpoints, user: user, password: password, access: etcd)
        self.key = key
        self.endpoint = endpoint
        self.ttl = ttl
        self.logger = logger
    }

    public func run() async throws {
        let lease = LeaseHolder()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let id = try await client.grantLease(ttl: ttl)
                    lease.id = id
                    try await client.put("\(key)/\(id)", endpoint, lease: id)
                    logger.info("registered in etcd", metadata: ["key": "\(key)/\(id)", "value": "\(endpoint)"])
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(Double(ttl) / 3))
                        guard try await client.keepAlive(id) > 0 else {
                            logger.warning("etcd lease \(id) is gone; registering again")
                            break
                        }
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("etcd registration failed, retrying: \(error)")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        if let id = lease.id {
            do {
                try await client.revokeLease(id)
                logger.info("unregistered from etcd", metadata: ["key": "\(key)/\(id)"])
            } catch {
                logger.warning("could not revoke etcd lease \(id); the key expires with it: \(error)")
            }
        }
    }
}

/// The current lease, read after the registration loop ends.
private final class LeaseHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64?

    var id: Int64? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
