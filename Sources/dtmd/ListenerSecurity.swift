import DtmConfiguration
import GRPCNIOTransportHTTP2
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCertificateReloading
import NIOSSL
import ServiceLifecycle
import UnixSignals

/// How dtmd's two ports are secured: plaintext (dtm's way, the default), TLS with
/// `TLS.CertFile` and `TLS.KeyFile`, and mutual TLS when `TLS.ClientCAFile` names the CA
/// client certificates must be signed by. A plaintext client gets a failed handshake.
///
/// With TLS, `certificate` holds the certificate and key both ports present, read again on
/// SIGHUP (`CertificateReloadOnHangup`): new connections get the new pair, open ones keep theirs.
struct ListenerSecurity {
    let grpc: HTTP2ServerTransport.Posix.TransportSecurity
    let http: HTTPServerBuilder
    let certificate: TimedCertificateReloader?

    var isOn: Bool { certificate != nil }

    init(_ settings: DtmdConfiguration) throws {
        guard !settings.tlsCertFile.isEmpty else {
            (grpc, http, certificate) = (.plaintext, .http1(), nil)
            return
        }
        // Reloaded on SIGHUP only: its timer (`run()`) is never started.
        let certificate = try TimedCertificateReloader.makeReloaderValidatingSources(
            refreshInterval: .seconds(3600),
            certificateSource: .init(location: .file(path: settings.tlsCertFile), format: .pem),
            privateKeySource: .init(location: .file(path: settings.tlsKeyFile), format: .pem))
        let clientCA = settings.tlsClientCAFile
        grpc = try .tls(certificateReloader: certificate) { config in
            if !clientCA.isEmpty {
                config.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
                config.clientCertificateVerification = .noHostnameVerification
            }
        }
        var tls = try TLSConfiguration.makeServerConfiguration(certificateReloader: certificate)
        if !clientCA.isEmpty {
            tls.trustRoots = .file(clientCA)
            tls.certificateVerification = .noHostnameVerification
        }
        http = try .tls(.http1(), tlsConfiguration: tls)
        self.certificate = certificate
    }
}

/// Reads `TLS.CertFile` and `TLS.KeyFile` again on every SIGHUP, the way servers renew a
/// certificate without a restart. A pair that cannot be read, or whose key does not match the
/// certificate, is refused with an error in the log, and the previous pair stays in use.
struct CertificateReloadOnHangup: Service {
    let certificate: TimedCertificateReloader
    let files: String
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                try certificate.reload()
                logger.info("SIGHUP: TLS certificate reloaded; new connections use it", metadata: ["files": "\(files)"])
            } catch {
                logger.error("SIGHUP: TLS certificate not reloaded, the previous one stays in use: \(error)", metadata: ["files": "\(files)"])
            }
        }
    }
}
