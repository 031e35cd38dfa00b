import Coordinator
import DTMWire
import GRPCCore
import Logging
import Modes
import Projections
import SwiftProtobuf

/// dtm's `dtmgimp.Dtm` gRPC service on top of the coordinator, wire-compatible with dtm's clients.
///
/// Refusals leave with dtm's status codes (`RPCError(RequestError)` in DTMWire).
public struct DtmService: Dtmgimp_Dtm.SimpleServiceProtocol {
    let coordinator: Coordinator
    let logger: Logger

    public init(coordinator: Coordinator, logger: Logger = Logger(label: "swiftdtm.grpc")) {
        self.coordinator = coordinator
        self.logger = logger
    }

    public func newGid(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Dtmgimp_DtmGidReply {
        .with { $0.gid = coordinator.newGid() }
    }

    public func submit(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Submit", gid: request.gid) { try await coordinator.submit(request.transactionRequest) }
    }

    public func prepare(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Prepare", gid: request.gid) { try await coordinator.prepare(request.transactionRequest) }
    }

    public func abort(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Abort", gid: request.gid) { try await coordinator.abort(request.transactionRequest) }
    }

    public func registerBranch(request: Dtmgimp_DtmBranchRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        var registration = BranchRegistrationRequest()
        registration.gid = request.gid
        registration.transType = request.transType
        registration.branchID = request.branchID
        registration.data = request.data
        registration.payload = request.busiPayload
        return try await mapErrors("RegisterBranch", gid: request.gid) { try await coordinator.registerBranch(registration) }
    }

    public func prepareWorkflow(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Dtmgimp_DtmProgressesReply {
        throw RPCError(code: .unimplemented, message: "PrepareWorkflow is not supported by this server yet")
    }

    public func subscribe(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        throw RPCError(code: .unimplemented, message: "topics (Subscribe) are not supported by this server yet")
    }

    public func unsubscribe(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        throw RPCError(code: .unimplemented, message: "topics (Unsubscribe) are not supported by this server yet")
    }

    public func deleteTopic(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        throw RPCError(code: .unimplemented, message: "topics (DeleteTopic) are not supported by this server yet")
    }

    /// Runs a call (metrics, logging of server faults) and maps its errors to status codes.
    private func mapErrors(_ api: String, gid: String, _ body: () async throws -> Void) async throws -> Google_Protobuf_Empty {
        do {
            try await GatewayCall.run(transport: "grpc", api: api, gid: gid, logger: logger, body)
            return Google_Protobuf_Empty()
        } catch {
            throw RPCError(RequestError(error))
        }
    }
}

extension Dtmgimp_DtmRequest {
    /// The request in the coordinator's terms.
    var transactionRequest: TransactionRequest {
        var request = TransactionRequest()
        request.gid = gid
        request.transType = transType
        request.steps = steps
        request.payloads = binPayloads
        request.customData = customedData
        request.queryPrepared = queryPrepared
        request.waitResult = transOptions.waitResult
        request.timeoutToFail = transOptions.timeoutToFail
        request.retryInterval = transOptions.retryInterval
        request.requestTimeout = transOptions.requestTimeout
        request.retryLimit = transOptions.retryLimit
        request.branchHeaders = transOptions.branchHeaders
        request.reqExtra = reqExtra
        request.rollbackReason = rollbackReason
        request.transport = "grpc"
        return request
    }
}
