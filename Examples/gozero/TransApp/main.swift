// The app of dtm's go-zero guide, in Swift: submits a msg transaction that moves 30 cents from
// user 1 to user 2, finding dtm and the trans service through etcd.
//
//   trans-app --dtm etcd://localhost:2379/dtmservice --busi etcd://localhost:2379/trans.rpc
import DTMClient
import Foundation
import Logging
import TransProtocol

func option(_ name: String, default value: String) -> String {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return value }
    return CommandLine.arguments[index + 1]
}

LoggingSystem.bootstrap { StreamLogHandler.standardOutput(label: $0) }
let logger = Logger(label: "trans-app")
let dtmServer = option("--dtm", default: "etcd://localhost:2379/dtmservice")
let busiServer = option("--busi", default: "etcd://localhost:2379/trans.rpc")

try await withDtmClient(target: dtmServer) { dtm in
    let gid = try await dtm.newGid()
    var msg = Msg(gid: gid)
    msg.options.waitResult = true
    try msg.add(busiServer + "/trans.TransSvc/TransOut", ProtobufPayload(Trans_BusiReq.with { $0.amount = 30; $0.userID = 1 }))
    try msg.add(busiServer + "/trans.TransSvc/TransIn", ProtobufPayload(Trans_BusiReq.with { $0.amount = 30; $0.userID = 2 }))
    try await msg.submit(dtm)
    logger.info("transaction \(gid) succeeded")
}
