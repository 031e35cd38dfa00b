import DtmConfiguration
import GRPCNIOTransportHTTP2
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL

/// How dtmd's two ports are secured: plaintext (dtm's way, the default), TLS with
/// `TLS.CertFile` and `TLS.KeyFile`, and mutual TLS when `TLS.ClientCAFile` names the CA
/// client certificates must be signed by. A plaintext client gets a failed handshake.
struct ListenerSecurity {
    let grpc: HTTP2ServerTransport.Posix.TransportSecurity
    let http: HTTPServerBuilder
    let isOn: Bool

    init(_ settings: DtmdConfiguration) throws {
        guard !settings.tlsCertFile.isEmpty else {
            (grpc, http, isOn) = (.plaintext, .http1(), false)
            return
        }
        let certificate = settings.tlsCertFile, key = settings.tlsKeyFile, clientCA = settings.tlsClientCAFile
        if clientCA.isEmpty {
            grpc = .tls(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem))
        } else {
            grpc = .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)) { config in
                config.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
                config.clientCertificateVerification = .noHostnameVerification
            }
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            // Read as PEM whatever the file is named (NIOSSL's `.file` takes `.key` for DER).
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        if !clientCA.isEmpty {
            tls.trustRoots = .file(clientCA)
            tls.certificateVerification = .noHostnameVerification
        }
        http = try .tls(.http1(), tlsConfiguration: tls)
        isOn = true
    }
}
