public import Coordinator
public import DTMWire
public import GRPCCore
public import Logging
import Modes
import Projections
public import SwiftProtobuf

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
        try await mapErrors("Submit", gid: request.gid) { try await coordinator.submit(TransactionRequest(request, transport: DtmProtocol.grpc)) }
    }

    public func prepare(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Prepare", gid: request.gid) { try await coordinator.prepare(TransactionRequest(request, transport: DtmProtocol.grpc)) }
    }

    public func abort(request: Dtmgimp_DtmRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Abort", gid: request.gid) { try await coordinator.abort(TransactionRequest(request, transport: DtmProtocol.grpc)) }
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
        var reply = Dtmgimp_DtmProgressesReply()
        _ = try await mapErrors("PrepareWorkflow", gid: request.gid) {
            let state = try await coordinator.prepareWorkflow(TransactionRequest(request, transport: DtmProtocol.grpc))
            reply.transaction = .with {
                $0.gid = state.gid
                $0.status = state.status.dtmName
                $0.rollbackReason = state.rollbackReason
            }
            // dtm leaves Result empty over gRPC.
            reply.progresses = TransactionModes.listedBranches(of: state).map { branch in
                .with {
                    $0.branchID = branch.branchID
                    $0.op = branch.op
                    $0.status = branch.status.dtmName
                    $0.binData = branch.payload
                }
            }
        }
        return reply
    }

    public func subscribe(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Subscribe", gid: "") { try await coordinator.subscribe(topic: request.topic, url: request.url, remark: request.remark) }
    }

    public func unsubscribe(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("Unsubscribe", gid: "") { try await coordinator.unsubscribe(topic: request.topic, url: request.url) }
    }

    public func deleteTopic(request: Dtmgimp_DtmTopicRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await mapErrors("DeleteTopic", gid: "") { try await coordinator.deleteTopic(request.topic) }
    }

    /// Runs a call and maps its errors to dtm's status codes, logging the server's own faults.
    /// (Metrics: `DtmMetricsInterceptor`.)
    private func mapErrors(_ api: String, gid: String, _ body: () async throws -> Void) async throws -> Google_Protobuf_Empty {
        do {
            try await body()
            return Google_Protobuf_Empty()
        } catch {
            let refusal = RequestError(error)
            refusal.logIfServerFault(api: api, transport: DtmProtocol.grpc, gid: gid, logger: logger)
            throw RPCError(refusal)
        }
    }
}
