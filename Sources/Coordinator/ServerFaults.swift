public import DTMWire
public import Logging

extension RequestError {
    /// Logs the refusal at error level when it is the server's fault (storage, internal), with the
    /// API, transport and gid an operator needs; a refusal of the request itself is not logged.
    public func logIfServerFault(api: String, transport: String, gid: String, logger: Logger) {
        guard isServerFault else { return }
        logger.error("\(api) failed: \(self)", metadata: ["transport": "\(transport)", "gid": "\(gid)"])
    }
}
