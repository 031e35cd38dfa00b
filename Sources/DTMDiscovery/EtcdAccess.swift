public import NIOSSL

/// How to reach etcd beyond plain HTTP, with the settings go-zero's `discov.EtcdConf` has:
/// TLS trusting `CACertFile` (else the system's roots), a client certificate `CertFile` with its
/// key `CertKeyFile` for an etcd run with `--client-cert-auth`, `InsecureSkipVerify` to accept
/// any server certificate, and an account `User`/`Pass` for targets whose URL names none.
///
/// One value serves every etcd a process talks to: dtmd's registration (`MicroService.Target`),
/// the `etcd://` branch targets it resolves, and the SDK's `etcd://` targets.
public struct EtcdAccess: Sendable {
    /// The TLS settings of every request; nil: plain `http://`.
    let tls: TLSConfiguration?
    let user: String?
    let password: String?

    /// Plain HTTP, credentials only from the target URL (etcd's default setup).
    public static let plain = EtcdAccess(tls: nil, user: nil, password: nil)

    private init(tls: TLSConfiguration?, user: String?, password: String?) {
        (self.tls, self.user, self.password) = (tls, user, password)
    }

    /// TLS is on when any of `caFile`, `certificateFile` or `insecureSkipVerify` is given; the
    /// files (PEM) are read now, so a missing or malformed one fails here, naming it.
    public init(
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, insecureSkipVerify: Bool = false,
        user: String? = nil, password: String? = nil
    ) throws {
        let caFile = caFile.flatMap { $0.isEmpty ? nil : $0 }
        let certificateFile = certificateFile.flatMap { $0.isEmpty ? nil : $0 }
        let keyFile = keyFile.flatMap { $0.isEmpty ? nil : $0 }
        guard (certificateFile == nil) == (keyFile == nil) else {
            throw EtcdError(description: "the etcd client certificate and its key go together: set both CertFile and CertKeyFile, or neither")
        }
        self.user = user.flatMap { $0.isEmpty ? nil : $0 }
        self.password = password
        guard caFile != nil || certificateFile != nil || insecureSkipVerify else {
            tls = nil
            return
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            configuration.trustRoots = .certificates(try Self.read("CACertFile", caFile) { try NIOSSLCertificate.fromPEMFile($0) })
        }
        if let certificateFile, let keyFile {
            configuration.certificateChain = try Self.read("CertFile", certificateFile) { try NIOSSLCertificate.fromPEMFile($0) }
                .map { .certificate($0) }
            // Read as PEM whatever the file is named (NIOSSL's `.file` takes `.key` for DER).
            configuration.privateKey = .privateKey(try Self.read("CertKeyFile", keyFile) { try NIOSSLPrivateKey(file: $0, format: .pem) })
        }
        if insecureSkipVerify { configuration.certificateVerification = .none }
        tls = configuration
    }

    /// Whether requests go over `https://`.
    public var usesTLS: Bool { tls != nil }

    /// The account for a target: the one its URL names, else this one's.
    func credentials(user targetUser: String?, password targetPassword: String?) -> (user: String?, password: String?) {
        if let targetUser, !targetUser.isEmpty { return (targetUser, targetPassword) }
        return (user, password)
    }

    private static func read<T>(_ setting: String, _ path: String, _ load: (String) throws -> T) throws -> T {
        do {
            return try load(path)
        } catch {
            throw EtcdError(description: "etcd \(setting) '\(path)' cannot be read as PEM: \(error)")
        }
    }
}
