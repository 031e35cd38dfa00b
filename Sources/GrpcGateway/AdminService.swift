import EventLog
import Foundation
import GRPCCore
import Projections
import ServiceLifecycle

/// SwiftDTM's admin and audit service (`swiftdtm.v1.Admin`): a transaction with its history,
/// paged listing, and a live stream of the log.
public struct AdminService: Swiftdtm_V1_Admin.SimpleServiceProtocol {
    let log: EventLog
    let view: TransactionView

    public init(log: EventLog, view: TransactionView) {
        self.log = log
        self.view = view
    }

    public func getTransaction(request: Swiftdtm_V1_GetTransactionRequest, context: ServerContext) async throws -> Swiftdtm_V1_GetTransactionReply {
        guard !request.gid.isEmpty else { throw RPCError(code: .invalidArgument, message: "gid must not be empty") }
        guard let state = try view.transaction(request.gid) else {
            throw RPCError(code: .notFound, message: "no transaction '\(request.gid)'")
        }
        let history = try log.records(ofStream: request.gid).map(Self.logged)
        return .with {
            $0.state = state
            $0.history = history
        }
    }

    public func listTransactions(request: Swiftdtm_V1_ListTransactionsRequest, context: ServerContext) async throws -> Swiftdtm_V1_ListTransactionsReply {
        let status: TransactionStatus?
        if request.status.isEmpty {
            status = nil
        } else {
            guard let named = TransactionStatus(dtmName: request.status) else {
                throw RPCError(code: .invalidArgument, message: "status '\(request.status)' is not one of prepared, submitted, aborting, succeed, failed")
            }
            status = named
        }
        guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit must not be negative") }
        var position: [UInt8]?
        if !request.pageToken.isEmpty {
            guard let bytes = Data(base64Encoded: request.pageToken) else {
                throw RPCError(code: .invalidArgument, message: "page_token is not one this server returned")
            }
            position = Array(bytes)
        }
        let limit = request.limit == 0 ? 100 : min(Int(request.limit), 1000)
        let page = try view.newestTransactions(before: position, limit: limit) { state in
            (status == nil || state.status == status) && (request.transType.isEmpty || state.transType == request.transType)
        }
        return .with {
            $0.transactions = page.states
            $0.nextPageToken = page.next.map { Data($0).base64EncodedString() } ?? ""
        }
    }

    /// Streams until the client cancels or dtmd shuts down (a watch never ends by itself, and
    /// graceful shutdown waits for every open call).
    public func watchEvents(request: Swiftdtm_V1_WatchEventsRequest, response: RPCWriter<Swiftdtm_V1_LoggedEvent>, context: ServerContext) async throws {
        try await cancelWhenGracefulShutdown {
            for try await record in log.follow(after: max(request.fromSeq, 1) - 1) {
                if !request.gid.isEmpty && !record.streamID.hasSameBytes(as: request.gid) { continue }
                try await response.write(try Self.logged(record))
            }
        }
    }

    static func logged(_ record: LogRecord) throws -> Swiftdtm_V1_LoggedEvent {
        let event = try RecordedEvent(record)
        return .with {
            $0.seq = record.seq
            $0.timeUs = event.time
            $0.gid = event.gid
            $0.type = record.type
            $0.event = event.event
        }
    }
}
