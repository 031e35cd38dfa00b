public import GRPCCore

extension GRPCClient {
    /// Calls the method `url` names with `payload` as its request message, unchanged, and `metadata`;
    /// returns the response message's bytes. How dtm calls a branch it has no types for (and the
    /// SDK a TCC Try).
    @discardableResult
    public func callRaw(_ url: GrpcBranchURL, payload: [UInt8], metadata: Metadata, options: CallOptions = .defaults) async throws -> [UInt8] {
        try await unary(
            request: ClientRequest(message: payload, metadata: metadata),
            descriptor: MethodDescriptor(fullyQualifiedService: url.service, method: url.method),
            serializer: RawBytesCoding(), deserializer: RawBytesCoding(), options: options
        ) { response in try response.message }
    }
}
