import ByteIdentity
/// Folds one event into a transaction's state. Pure, and the only way state changes: the live view,
/// a rebuild and any audit re-derivation all go through it.
///
/// Every event that applies counts in the state's `version` (the compare-and-append version).
/// `state` is nil before the transaction's first event. An event that cannot apply (anything but
/// `created` for an unknown transaction, a second `created`) leaves the state as it was; the
/// coordinator never emits one, and a replay must not invent state from it.
public func apply(_ recorded: RecordedEvent, to state: consuming TransactionState?) -> TransactionState? {
    guard var state else {
        guard case let .created(created) = recorded.event.kind else { return nil }
        return newTransaction(recorded, created)
    }
    guard state.gid.hasSameBytes(as: recorded.gid) else { return state }
    switch recorded.event.kind {
    case .created, .kvChanged, nil:
        return state
    case let .branchRegistered(registered):
        let spec = registered.branch
        if let index = state.branchIndex(id: spec.branchID, op: spec.op) {
            state.branches[index].url = spec.url
            state.branches[index].payload = spec.payload
            state.branches[index].status = registered.status
            state.branches[index].updateTimeUs = recorded.time
            if registered.status != .prepared { state.branches[index].finishTimeUs = recorded.time }
        } else {
            var branch = BranchState(spec, at: recorded.time)
            branch.status = registered.status
            if registered.status != .prepared { branch.finishTimeUs = recorded.time }
            state.branches.append(branch)
        }
    case let .attemptStarted(started):
        if let index = state.branchIndex(id: started.branchID, op: started.op) {
            state.branches[index].attempts = max(state.branches[index].attempts, started.attempt)
            state.branches[index].updateTimeUs = recorded.time
        }
    case let .attemptFinished(finished):
        if let index = state.branchIndex(id: finished.branchID, op: finished.op) {
            var branch = state.branches[index]
            branch.attempts = max(branch.attempts, finished.attempt)
            branch.lastOutcome = finished.outcome
            branch.lastError = finished.error
            branch.updateTimeUs = recorded.time
            switch finished.outcome {
            case .success:
                branch.status = .succeed
                branch.finishTimeUs = recorded.time
            case .failure:
                branch.status = .failed
                branch.finishTimeUs = recorded.time
            case .ongoing, .error, .unspecified, .UNRECOGNIZED:
                break
            }
            state.branches[index] = branch
        }
    case let .statusChanged(change):
        state.status = change.to
        if !change.reason.isEmpty { state.rollbackReason = change.reason }
        // dtm keeps next_cron_time once a transaction finishes (nothing schedules a finished one).
        if change.to.isTerminal { state.finishTimeUs = recorded.time }
    case let .retryScheduled(schedule):
        state.nextDueUs = schedule.dueUs
        state.retryInterval = schedule.retryInterval
    case let .workflowResult(result):
        state.result = result.result
    }
    state.updateTimeUs = recorded.time
    state.lastSeq = recorded.seq
    state.version = state.version == .max ? .max : state.version + 1
    return state
}

private func newTransaction(_ recorded: RecordedEvent, _ created: TransactionCreated) -> TransactionState {
    var state = TransactionState()
    state.gid = recorded.gid
    state.transType = created.transType
    state.status = created.status
    state.protocol = created.protocol
    state.options = created.options
    state.customData = created.customData
    state.queryPrepared = created.queryPrepared
    state.reqExtra = created.reqExtra
    state.steps = created.steps
    state.rollbackReason = created.rollbackReason
    state.createTimeUs = recorded.time
    state.updateTimeUs = recorded.time
    state.nextDueUs = created.nextDueUs
    state.retryInterval = created.retryInterval
    state.branches = created.branches.map { BranchState($0, at: recorded.time) }
    state.lastSeq = recorded.seq
    state.version = 1
    return state
}

extension BranchState {
    init(_ spec: BranchSpec, at time: Int64) {
        self.init()
        branchID = spec.branchID
        op = spec.op
        url = spec.url
        payload = spec.payload
        status = .prepared
        createTimeUs = time
        updateTimeUs = time
    }
}

extension TransactionState {
    /// The position of the branch with this id and op.
    public func branchIndex(id: String, op: String) -> Int? {
        branches.firstIndex { $0.branchID.hasSameBytes(as: id) && $0.op.hasSameBytes(as: op) }
    }

    /// The branch with this id and op.
    public func branch(id: String, op: String) -> BranchState? {
        branchIndex(id: id, op: op).map { branches[$0] }
    }
}
