import Logging

/// How both gateways run a client's call: dtm's call metrics are recorded, every error leaves as
/// a `CoordinatorError` (storage and internal failures described, never "unknown"), and the
/// server's own faults are logged at error level with the API and gid.
public enum GatewayCall {
    /// Runs `body` for `api` arriving over `transport` (`grpc` or `http`).
    public static func run<T>(
        transport: String, api: String, gid: String = "", logger: Logger, _ body: () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            DtmMetrics.recordCall(type: transport, api: api, status: "SUCCESS", duration: ContinuousClock.now - start)
            return result
        } catch {
            let refusal = CoordinatorError(error)
            let status = switch refusal {
            case .failure: "FAILURE"
            case .ongoing: "ONGOING"
            case .invalidArgument, .unimplemented, .requestTooLarge, .storageFull, .unavailable: "ERROR"
            }
            DtmMetrics.recordCall(type: transport, api: api, status: status, duration: ContinuousClock.now - start)
            if refusal.isServerFault {
                logger.error("\(api) failed: \(refusal)", metadata: ["transport": "\(transport)", "gid": "\(gid)"])
            }
            throw refusal
        }
    }
}
