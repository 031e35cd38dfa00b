import DTMWire
import Logging

/// How both gateways run a client's call: dtm's call metrics are recorded, every error leaves as
/// a `RequestError` (storage and internal failures described, never "unknown"), and the
/// server's own faults are logged at error level with the API and gid.
public enum GatewayCall {
    /// Runs `body` for `api` arriving over `transport` (`grpc` or `http`).
    public static func run<T>(
        transport: String, api: String, gid: String = "", logger: Logger, _ body: () async throws -> T
    ) async throws -> T {
        let start = ContinuousClock.now
        do {
            let result = try await body()
            DtmMetrics.recordCall(type: transport, api: api, status: DtmResult.success.rawValue, duration: ContinuousClock.now - start)
            return result
        } catch {
            let refusal = RequestError(error)
            DtmMetrics.recordCall(type: transport, api: api, status: refusal.result.rawValue, duration: ContinuousClock.now - start)
            if refusal.isServerFault {
                logger.error("\(api) failed: \(refusal)", metadata: ["transport": "\(transport)", "gid": "\(gid)"])
            }
            throw refusal
        }
    }
}
