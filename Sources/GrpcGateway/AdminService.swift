import ByteIdentity
import Foundation
public import GRPCCore
import Projections
import ServiceLifecycle
public import TransactionStore

/// SwiftDTM's admin and audit service (`swiftdtm.v1.Admin`): a transaction with its history,
/// paged listing, and a live stream of the log.
public struct AdminService: Swiftdtm_V1_Admin.SimpleServiceProtocol {
    let store: any TransactionStore

    public init(store: any TransactionStore) {
        self.store = store
    }

    public func getTransaction(request: Swiftdtm_V1_GetTransactionRequest, context: ServerContext) async throws -> Swiftdtm_V1_GetTransactionReply {
        guard !request.gid.isEmpty else { throw RPCError(code: .invalidArgument, message: "gid must not be empty") }
        guard let state = try await store.transaction(request.gid) else {
            throw RPCError(code: .notFound, message: "no transaction '\(request.gid)'")
        }
        let history = try await store.history(of: request.gid).map(Self.logged)
        return .with {
            $0.state = state
            $0.history = history
        }
    }

    public func listTransactions(request: Swiftdtm_V1_ListTransactionsRequest, context: ServerContext) async throws -> Swiftdtm_V1_ListTransactionsReply {
        var filter = TransactionFilter(transType: request.transType)
        if !request.status.isEmpty {
            guard let named = TransactionStatus(dtmName: request.status) else {
                throw RPCError(code: .invalidArgument, message: "status '\(request.status)' is not one of prepared, submitted, aborting, succeed, failed")
            }
            filter.status = named
        }
        guard request.limit >= 0 else { throw RPCError(code: .invalidArgument, message: "limit must not be negative") }
        var page: PageToken?
        if !request.pageToken.isEmpty {
            guard let token = PageToken(text: request.pageToken) else {
                throw RPCError(code: .invalidArgument, message: "page_token is not one this server returned")
            }
            page = token
        }
        let found = try await store.transactions(matching: filter, page: page, limit: TransactionPage.size(Int(request.limit)))
        return .with {
            $0.transactions = found.transactions
            $0.nextPageToken = found.next?.text ?? ""
        }
    }

    /// Streams until the client cancels or dtmd shuts down (a watch never ends by itself, and
    /// graceful shutdown waits for every open call).
    public func watchEvents(request: Swiftdtm_V1_WatchEventsRequest, response: RPCWriter<Swiftdtm_V1_LoggedEvent>, context: ServerContext) async throws {
        try await cancelWhenGracefulShutdown {
            for try await event in store.follow(after: max(request.fromSeq, 1) - 1) {
                if !request.gid.isEmpty && !event.gid.hasSameBytes(as: request.gid) { continue }
                try await response.write(Self.logged(event))
            }
        }
    }

    static func logged(_ event: RecordedEvent) -> Swiftdtm_V1_LoggedEvent {
        .with {
            $0.seq = event.seq
            $0.timeUs = event.time
            $0.gid = event.gid
            $0.type = event.event.typeName
            $0.event = event.event
        }
    }
}
