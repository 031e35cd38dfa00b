import GRPCCore

/// What dtm tells a branch about the call, from the `dtm-*` metadata.
public struct BranchContext: Sendable, Equatable {
    public let gid: String
    public let transType: String
    public let branchID: String
    public let op: String

    /// Reads the `dtm-*` metadata of a call; nil when the call did not come from dtm.
    public init?(_ metadata: Metadata) {
        func value(_ key: String) -> String? { metadata[stringValues: key].first(where: { _ in true }) }
        guard let gid = value("dtm-gid") else { return nil }
        self.gid = gid
        transType = value("dtm-trans_type") ?? ""
        branchID = value("dtm-branch_id") ?? ""
        op = value("dtm-op") ?? ""
    }
}

/// Runs a branch handler the way dtm expects: `DtmError.failure` answers Aborted (dtm: FAILURE),
/// `DtmError.ongoing` answers FailedPrecondition (dtm: ONGOING); other errors stay errors, which
/// dtm retries.
public func dtmBranch<T: Sendable>(_ metadata: Metadata, _ body: (BranchContext?) async throws -> T) async throws -> T {
    do {
        return try await body(BranchContext(metadata))
    } catch let error as DtmError {
        switch error {
        case let .failure(message): throw RPCError(code: .aborted, message: message)
        case let .ongoing(message): throw RPCError(code: .failedPrecondition, message: message)
        }
    }
}
