public import DTMWire
public import GRPCCore

/// What dtm tells a branch about the call, from the `dtm-*` metadata (`BranchContext(metadata)`,
/// nil when the call did not come from dtm).
public typealias BranchContext = DtmMetadata

/// Runs a branch handler the way dtm expects: `DtmError.failure` answers dtm's FAILURE status,
/// `DtmError.ongoing` its ONGOING status (`DtmResult`); other errors stay errors, which dtm retries.
public func dtmBranch<T: Sendable>(_ metadata: Metadata, _ body: (BranchContext?) async throws -> T) async throws -> T {
    do {
        return try await body(BranchContext(metadata))
    } catch let error as DtmError {
        switch error {
        case let .failure(message): throw RPCError(.failure(message))
        case let .ongoing(message): throw RPCError(.ongoing(message))
        }
    }
}
