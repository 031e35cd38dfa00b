/// Derived state kept in the same LMDB environment as the log and updated in the same write
/// transaction as the records it reflects, so the two never disagree.
///
/// Every method runs on the log's writer thread inside a write transaction; none may block on
/// anything but LMDB. `project` is re-run on the same records when a transaction is retried
/// (after the map grew), so it must derive everything from the records and the transaction.
public protocol LogProjector: Sendable {
    /// Folds `records` (consecutive, in seq order) into the derived state and records the last seq as
    /// the checkpoint. `prepared` is what `prepare` made of the same records, when it ran.
    func project(_ records: [LogRecord], prepared: (any Sendable)?, in txn: borrowing LMDBWriteTransaction) throws

    /// Work on `records` that needs no transaction (decoding), done on another thread ahead of
    /// `project` when a long pass (catch-up, rebuild) reads the log. nil: nothing to prepare.
    func prepare(_ records: [LogRecord]) throws -> (any Sendable)?

    /// The seq of the last record folded in; 0 when nothing has been.
    func checkpoint(in txn: borrowing LMDBWriteTransaction) throws -> UInt64

    /// Drops all derived state (the checkpoint becomes 0).
    func reset(in txn: borrowing LMDBWriteTransaction) throws
}

/// Progress of a long pass over the log (rebuild, verify): how far it is, out of how many records.
public struct LogProgress: Sendable, Equatable {
    /// The last seq processed.
    public let done: UInt64
    /// The last seq of the pass.
    public let total: UInt64
}
