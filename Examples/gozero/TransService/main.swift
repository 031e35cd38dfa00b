// The trans service of dtm's go-zero guide, in Swift: gRPC `trans.TransSvc` with TransOut and
// TransIn, registered in etcd the way go-zero registers a service (key `trans.rpc/<lease>`).
//
//   trans-service --etcd etcd://localhost:2379/trans.rpc --listen 127.0.0.1:8081
import DTMClient
import DTMDiscovery
import DTMWire
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle
import TransProtocol

struct TransService: Trans_TransSvc.ServiceProtocol {
    let logger = Logger(label: "trans")

    func transOut(request: ServerRequest<Trans_BusiReq>, context: ServerContext) async throws -> ServerResponse<Trans_BusiReply> {
        try await dtmBranch(request.metadata) { branch in
            logger.info("transfer out \(request.message.amount) cents from \(request.message.userID)", metadata: ["gid": "\(branch?.gid ?? "-")"])
            return ServerResponse(message: .with { $0.message = "ok" })
        }
    }

    func transIn(request: ServerRequest<Trans_BusiReq>, context: ServerContext) async throws -> ServerResponse<Trans_BusiReply> {
        try await dtmBranch(request.metadata) { branch in
            logger.info("transfer in \(request.message.amount) cents to \(request.message.userID)", metadata: ["gid": "\(branch?.gid ?? "-")"])
            return ServerResponse(message: .with { $0.message = "ok" })
        }
    }
}

func option(_ name: String, default value: String) -> String {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return value }
    return CommandLine.arguments[index + 1]
}

LoggingSystem.bootstrap { StreamLogHandler.standardOutput(label: $0) }
let etcd = option("--etcd", default: "etcd://localhost:2379/trans.rpc")
let listen = option("--listen", default: "127.0.0.1:8081")
guard let address = HostPortText(listen) else {
    FileHandle.standardError.write(Data("--listen must be host:port\n".utf8))
    exit(2)
}
// Behind dtm's Go server too, which calls branches with content-type application/grpc+dtm_raw.
var config = HTTP2ServerTransport.Posix.Config.defaults
config.acceptDtmRawContentType()
let server = GRPCServer(
    transport: HTTP2ServerTransport.Posix(
        address: .ipv4(host: address.host, port: address.port), transportSecurity: .plaintext, config: config),
    services: [TransService()])
let group = ServiceGroup(configuration: .init(
    services: [.init(service: GRPCServerService(server: server)), .init(service: try GoZeroRegistration(target: etcd, endpoint: listen))],
    gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "trans-service")))
Logger(label: "trans").info("trans service on \(listen), registered at \(etcd)")
try await group.run()

/// `host:port` from the command line.
struct HostPortText {
    let host: String
    let port: Int

    init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        host = String(text[..<colon])
        self.port = port
    }
}
