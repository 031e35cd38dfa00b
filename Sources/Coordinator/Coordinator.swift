import ByteIdentity
public import DTMWire
import Foundation
public import Invokers
public import Modes
public import Logging
public import Projections
public import TransactionStore

/// The imperative shell around the modes' pure decisions: checks client requests against the
/// projected state and records them as events, drives transactions round by round (decide → call
/// branches → record outcomes), and tells the gateways what to answer.
///
/// Client requests are acknowledged only once their events are durable. Progress inside a round
/// (attempts started and finished) is queued to the log without waiting, and folded into the
/// round's own copy of the state with the same `apply` the view uses; the round waits for
/// durability at its end, and before calls decided after a status change of the round (that
/// change decides the direction: compensation must never run on an `aborting` a crash can lose).
/// Every branch call is idempotent by contract, so a crash that loses other undurable progress
/// only repeats calls.
public final class Coordinator: Sendable {
    /// Where transactions live.
    let store: any TransactionStore
    let invoker: any BranchInvoker
    /// The server's defaults for transaction options.
    public let defaults: TransactionDefaults
    let logger: Logger
    let locks = GidLocks()
    /// Transactions the scheduler should start a round of at once.
    let roundsDueNow = RoundsDueNow()
    /// Where the coordinator and its scheduler take the time from.
    let clock: any TransactionClock
    /// dtm's AlertWebHook, with AlertRetryLimit: a branch whose retry count reaches the limit is
    /// reported after each error.
    let alerts: (sender: any AlertSender, retryLimit: Int64)?
    /// How long a claim on a transaction lasts unless renewed (before every set of calls): how
    /// soon another node takes over the transactions of a node that died.
    public let roundLease: Duration
    /// Where calls may go: never dtmd itself (always on in dtmd), and the configured allow and deny lists.
    let branchTargets: BranchTargets

    public init(
        store: any TransactionStore, invoker: any BranchInvoker, defaults: TransactionDefaults,
        logger: Logger = Logger(label: "swiftdtm.coordinator"),
        clock: any TransactionClock = SystemClock(),
        alerts: (sender: any AlertSender, retryLimit: Int64)? = nil,
        roundLease: Duration = .seconds(300),
        branchTargets: BranchTargets = .off
    ) {
        self.branchTargets = branchTargets
        self.store = store
        self.invoker = invoker
        self.defaults = defaults
        self.logger = logger
        self.clock = clock
        self.alerts = alerts
        self.roundLease = roundLease
    }

    // MARK: Client requests

    /// A new globally unique gid.
    public func newGid() -> String { GidGenerator.next() }

    /// dtm's Prepare: creates a prepared transaction; idempotent while it is prepared.
    public func prepare(_ request: TransactionRequest) async throws {
        let created = try await creation(request, status: .prepared)
        try await command(.prepare(created), gid: request.gid)
    }

    /// dtm's Submit: submits a prepared transaction or creates a submitted one, then drives it.
    /// With WaitResult it answers after the first round, FAILURE unless the transaction succeeded.
    public func submit(_ request: TransactionRequest) async throws {
        let created = try await creation(request, status: .submitted)
        // What happens after the lock: nothing, a round by the scheduler now, or a WaitResult answer.
        enum Next: Sendable { case nothing, driveInBackground, answer(TransactionState) }
        let next: Next = try await serialized(request.gid, transType: request.transType) { fresh in
            let (existing, events) = try await self.decision(request.gid, fresh: fresh) { existing in
                try ClientCommands.events(for: .submit(created), gid: request.gid, existing: existing, now: self.clock.now())
            }
            // dtm answers a repeated Submit of a submitted transaction with a new round at once.
            let resubmitted = existing?.status == .submitted
            guard !events.isEmpty || resubmitted else { return .nothing }
            let submitted = self.applyLocally(events, to: existing, gid: request.gid)
            // A workflow's Submit records its end: nothing to run; a later branch time: the scheduler starts it.
            let runsNow = !submitted.status.isTerminal && (resubmitted || submitted.nextDueUs <= self.clock.now())
            // WaitResult: the first round runs under the same lock, from the state just recorded,
            // claimed by the same write when the store can.
            let waits = runsNow && (request.waitResult || submitted.options.waitResult)
            var claimed = false
            if waits, !events.isEmpty {
                claimed = try await self.store.appendAndClaim(events, to: request.gid, expectedVersion: existing?.version, lease: self.roundLease)
            } else {
                try await self.record(events, gid: request.gid, on: existing)
            }
            self.logger.info(resubmitted ? "transaction submitted again" : "transaction submitted",
                             metadata: ["gid": "\(request.gid)", "trans_type": "\(submitted.transType)"])
            guard runsNow else { return .nothing }
            guard waits else { return .driveInBackground }
            return .answer(try await self.claimedRound(request.gid, from: submitted, claimed: claimed) ?? submitted)
        }
        switch next {
        case .nothing:
            return
        case let .answer(finished):
            guard finished.status == .succeed else { throw RequestError.failure(Self.waitResultMessage(finished)) }
        case .driveInBackground:
            roundsDueNow.add(request.gid)
        }
    }

    /// dtm's resetCronTime: every unfinished transaction scheduled later than `timeout` seconds
    /// from now is due now, at most `limit` of them; answers how many, and whether more are left.
    public func resetCronTime(timeout: Int64, limit: Int) async throws -> (count: Int, hasRemaining: Bool) {
        let after = Microseconds.after(seconds: timeout, from: clock.now())
        let gids = try await store.scheduled(after: after, limit: limit + 1)
        var count = 0
        for gid in gids.prefix(limit) {
            let reset = try await serialized(gid) { _ in
                // Another round may have finished or rescheduled it since it was listed.
                guard let existing = try await self.store.transaction(gid), !existing.status.isTerminal, existing.nextDueUs > after else { return false }
                try await self.record(try ClientCommands.events(for: .resetNextCronTime, gid: gid, existing: existing, now: self.clock.now()), gid: gid, on: existing)
                return true
            }
            if reset { count += 1 }
        }
        if count > 0 { roundsDueNow.signal.ring() }
        return (count, gids.count > limit)
    }

    /// The `created` event of `request`, with the current subscribers of the topics its msg
    /// actions name (read at every Prepare and Submit, as dtm does).
    private func creation(_ request: TransactionRequest, status: TransactionStatus) async throws -> TransactionCreated {
        var subscribers = [ExactString: [Subscriber]]()
        for topic in TransactionCreation.topics(in: request) where subscribers[topic] == nil {
            subscribers[topic] = Topics.subscribers(try await store.kvRecord(cat: Topics.cat, key: topic.string))
        }
        let created = try TransactionCreation.created(request, status: status, defaults: defaults, now: clock.now(), subscribers: subscribers)
        try branchTargets.check(created)
        return created
    }

    // MARK: Topics and KV

    /// dtm's Subscribe: `url` receives the msg actions sent to `topic`.
    public func subscribe(topic: String, url: String, remark: String) async throws {
        try branchTargets.check(url, field: "url")
        try await changeKV(cat: Topics.cat, key: topic) { try Topics.subscribe($0, topic: topic, url: url, remark: remark) }
        logger.info("subscribed", metadata: ["topic": "\(topic)", "url": "\(url)"])
    }

    /// dtm's Unsubscribe.
    public func unsubscribe(topic: String, url: String) async throws {
        try await changeKV(cat: Topics.cat, key: topic) { try Topics.unsubscribe($0, topic: topic, url: url) }
        logger.info("unsubscribed", metadata: ["topic": "\(topic)", "url": "\(url)"])
    }

    /// dtm's DeleteTopic.
    public func deleteTopic(_ topic: String) async throws {
        try await changeKV(cat: Topics.cat, key: topic) { try Topics.delete($0, topic: topic) }
        logger.info("topic deleted", metadata: ["topic": "\(topic)"])
    }

    /// Records the change `rule` makes of KV record `cat`/`key`, under the record's lock (its stream
    /// id is never a gid), and waits until it is durable.
    private func changeKV(cat: String, key: String, _ rule: @escaping @Sendable (KVState?) throws -> KVChanged) async throws {
        try await serialized(KVStream.id(cat: cat, key: key)) { _ in
            let current = try await self.store.kvRecord(cat: cat, key: key)
            let change = try rule(current)
            try await self.store.append([.kvChanged(change)], to: KVStream.id(cat: cat, key: key), expectedVersion: current?.streamVersion).durable()
        }
    }

    /// dtm's KV record `key` of `cat`; nil when absent (or deleted).
    public func kvRecord(cat: String, key: String) async throws -> KVState? {
        try await store.kvRecord(cat: cat, key: key).flatMap { $0.deleted ? nil : $0 }
    }

    /// The records of `cat` in key order after `position`, at most `limit`.
    public func kvRecords(cat: String, after position: String?, limit: Int) async throws -> [KVState] {
        try await store.kvRecords(cat: cat, after: position, limit: limit)
    }

    /// `events` folded into `state` (or into a new transaction `gid`) here, without reading the view.
    private func applyLocally(_ events: [TransactionEvent], to state: TransactionState?, gid: String) -> TransactionState {
        var current = state
        for event in events {
            current = apply(RecordedEvent(seq: (current?.lastSeq ?? 0) + 1, time: clock.now(), gid: gid, event: event), to: current)
        }
        return current ?? TransactionState()
    }

    /// dtm's PrepareWorkflow: creates the workflow prepared, or leaves a known one as it is;
    /// answers its state with the progress recorded so far.
    public func prepareWorkflow(_ request: TransactionRequest) async throws -> TransactionState {
        guard request.transType == WorkflowMode.transType else {
            throw RequestError.invalidArgument("TransType of PrepareWorkflow must be \(WorkflowMode.transType), got '\(request.transType)'")
        }
        let created = try await creation(request, status: .prepared)
        return try await serialized(request.gid, transType: request.transType) { fresh in
            let (existing, events) = try await self.decision(request.gid, fresh: fresh) { existing in
                try ClientCommands.events(for: .prepare(created), gid: request.gid, existing: existing, now: self.clock.now())
            }
            try await self.record(events, gid: request.gid, on: existing)
            return self.applyLocally(events, to: existing, gid: request.gid)
        }
    }

    /// dtm's Abort: a prepared msg fails; a prepared or aborting tcc/xa moves to aborting and is
    /// rolled back.
    public func abort(_ request: TransactionRequest) async throws {
        try RequestValidation.gid(request.gid)
        try await command(.abort(reason: request.rollbackReason), gid: request.gid)
        logger.info("transaction aborted", metadata: ["gid": "\(request.gid)"])
        let state = try await drive(request.gid)
        if request.waitResult, let state, state.status != .failed {
            throw RequestError.ongoing("transaction is \(state.status.dtmName), rollback not finished")
        }
    }

    /// dtm's RegisterBranch: adds the mode's branch ops while the transaction is prepared (TCC
    /// cancel and confirm, XA rollback and commit: a repeat changes nothing; a workflow's step
    /// outcome: a repeat is refused).
    public func registerBranch(_ request: BranchRegistrationRequest) async throws {
        try RequestValidation.gid(request.gid)
        guard !request.branchID.isEmpty, request.branchID.utf8.count <= 64 else {
            throw RequestError.invalidArgument("BranchID must be 1 to 64 characters")
        }
        let specs = try TransactionModes.requested(request.transType).registeredBranches(request)
        for spec in specs { try branchTargets.check(spec.branch.url, field: "branch \(spec.branch.branchID) \(spec.branch.op) URL") }
        try await command(.registerBranches(specs, transType: request.transType), gid: request.gid, transType: request.transType)
    }

    /// dtm's forceStop: an unfinished transaction fails at once; nothing more is called.
    public func forceStop(_ gid: String) async throws {
        try RequestValidation.gid(gid)
        try await command(.forceStop, gid: gid)
        logger.info("transaction force stopped", metadata: ["gid": "\(gid)"])
    }

    /// dtm's resetNextCronTime: an unfinished transaction is due now instead of at its retry time.
    public func resetNextCronTime(_ gid: String) async throws {
        try RequestValidation.gid(gid)
        try await command(.resetNextCronTime, gid: gid)
        roundsDueNow.signal.ring()
    }

    /// Records what `command` means for `gid` (`ClientCommands`), under the gid's lock (as
    /// `serialized` takes it for a request of `transType`).
    private func command(_ command: ClientCommand, gid: String, transType: String = "") async throws {
        try await serialized(gid, transType: transType) { fresh in
            let (existing, events) = try await self.decision(gid, fresh: fresh) { existing in
                try ClientCommands.events(for: command, gid: gid, existing: existing, now: self.clock.now())
            }
            try await self.record(events, gid: gid, on: existing)
        }
    }

    /// What `decide` makes of `gid`'s state, and that state: decided on the store's cheapest
    /// state first (`decisionState`) unless `fresh`; when that state was unverified and the
    /// decision appends nothing or refuses, decided again on the current state.
    private func decision(
        _ gid: String, fresh: Bool, _ decide: (TransactionState?) throws -> [TransactionEvent]
    ) async throws -> (existing: TransactionState?, events: [TransactionEvent]) {
        if !fresh {
            let (cheap, verified) = try await store.decisionState(gid)
            if verified { return (cheap, try decide(cheap)) }
            if let events = try? decide(cheap), !events.isEmpty { return (cheap, events) }
        }
        let current = try await store.transaction(gid)
        return (current, try decide(current))
    }

    /// The current state of `gid`, nil when unknown.
    public func transaction(_ gid: String) async throws -> TransactionState? {
        try await store.transaction(gid)
    }

    /// Transactions newest first that `filter` accepts, a page at a time.
    public func transactions(matching filter: TransactionFilter, page: PageToken?, limit: Int) async throws -> TransactionPage {
        try await store.transactions(matching: filter, page: page, limit: limit)
    }

    // MARK: Driving

    /// Runs one round of `gid`: decides and acts until the transaction finishes or has to wait,
    /// then returns its state once the round's events are durable. Returns nil for an unknown gid.
    @discardableResult
    public func drive(_ gid: String) async throws -> TransactionState? {
        try await locks.withLock(gid) { try await self.claimedRound(gid, from: nil) }
    }

    /// Runs one round of `gid` if it is still due (another round may have run and rescheduled it
    /// since it was found due); returns its state either way, nil for an unknown gid. `claimed`:
    /// the caller holds the store's claim already (the scheduler's `claimDue`); else it is taken here.
    @discardableResult
    public func driveIfDue(_ gid: String, claimed: Bool = false) async throws -> TransactionState? {
        try await locks.withLock(gid) {
            guard let state = try await self.store.transaction(gid) else { return nil }
            guard !state.status.isTerminal, state.nextDueUs > 0, state.nextDueUs <= self.clock.now() else { return state }
            // Claimed by another node: that node drives it.
            if !claimed { guard try await self.store.claim(gid, lease: self.roundLease) else { return state } }
            return try await self.round(gid, from: state)
        }
    }

    /// Runs `body` under the gid's lock; when another node appended to the gid meanwhile
    /// (`StoreConflict`), runs it again, told to read fresh, as often as `conflictRetries`. Bodies
    /// append only at their end, so a conflict leaves nothing of them recorded.
    ///
    /// A workflow's own requests (`transType` workflow: PrepareWorkflow, a progress, its Submit)
    /// do not take the lock: they come from the application while a round may be holding it to
    /// call that application back, and would wait for the call that waits for them. Their
    /// compare-and-append orders them against the round as against another node's writes.
    private func serialized<T: Sendable>(
        _ gid: String, transType: String = "", _ body: (_ fresh: Bool) async throws -> T
    ) async throws -> T {
        var conflicts = 0
        while true {
            do {
                if transType == WorkflowMode.transType { return try await body(conflicts > 0) }
                return try await locks.withLock(gid) { try await body(conflicts > 0) }
            } catch let conflict as StoreConflict where conflicts < Self.conflictRetries {
                conflicts += 1
                logger.debug("another node changed the transaction; deciding again", metadata: ["gid": "\(gid)", "conflict": "\(conflict)"])
            }
        }
    }

    /// How often a client request is decided again after losing a race to another node.
    static let conflictRetries = 8

    /// A round a client request starts (WaitResult, Abort), holding the store's claim on `gid` so
    /// no other node drives it meanwhile (`claimed`: taken already): waits up to `roundLease` for
    /// another node's round to end; if it does not, returns the state as it is. Releases the
    /// claim at the end.
    private func claimedRound(_ gid: String, from start: TransactionState?, claimed: Bool = false) async throws -> TransactionState? {
        let deadline = ContinuousClock.now + roundLease
        while !claimed, try await !store.claim(gid, lease: roundLease) {
            guard ContinuousClock.now < deadline else { return try await store.transaction(gid) }
            try await Task.sleep(for: .milliseconds(50))
        }
        do {
            let state = try await round(gid, from: start)
            await store.release(gid, holdFor: .zero)
            return state
        } catch {
            await store.release(gid, holdFor: .zero)
            throw error
        }
    }

    /// Whether a round of `gid` (or a client request for it) is running now.
    public func isDriving(_ gid: String) -> Bool { locks.isHeld(gid) }

    /// One round, from `start` (the caller's fresh state) or the view. Events are folded into the
    /// round's state at once and queued to the log in batches — before each set of branch calls
    /// and at the end — without waiting; the round waits for durability once, before returning.
    private func round(_ gid: String, from start: TransactionState?) async throws -> TransactionState? {
        let loaded: TransactionState?
        if let start { loaded = start } else { loaded = try await store.transaction(gid) }
        guard var state = loaded else { return nil }
        var pending = [TransactionEvent]()
        var appends = [any PendingAppend]()
        // The version the store has (or has queued) for the transaction: what the next append expects.
        var storedVersion = state.version
        // A status change of this round not yet known durable. Calls decided after it wait for it:
        // a crash that lost it could reverse the direction (a lost `aborting` runs the action
        // again after its compensation was called), which repeating calls cannot repair.
        var statusChangePending = false
        // Every caller claims the transaction just before its round.
        var claimedAt = ContinuousClock.now
        func record(_ event: TransactionEvent) {
            if let next = apply(RecordedEvent(seq: state.lastSeq + 1, time: clock.now(), gid: gid, event: event), to: state) {
                state = next
            }
            pending.append(event)
        }
        func flush() async throws {
            guard !pending.isEmpty else { return }
            appends.append(try await store.append(pending, to: gid, expectedVersion: storedVersion))
            storedVersion = state.version
            pending.removeAll()
        }
        guard let mode = TransactionModes.mode(state.transType) else { return state }
        // dtm's round metrics: `fail` unless the round ends normally with no branch answering an
        // error or ONGOING, and the transaction did not end failed.
        var roundSucceeded = false
        var branchesInTrouble = false
        CoordinatorMetrics.roundsInFlight.increment()
        defer {
            CoordinatorMetrics.roundsInFlight.decrement()
            let sinceCreation = Duration.microseconds(max(0, clock.now() - state.createTimeUs))
            DtmMetrics.roundEnded(model: state.transType, succeeded: roundSucceeded && !branchesInTrouble && state.status != .failed,
                                  sinceCreation: sinceCreation)
        }
        // Each branch is called at most once per round, plus the retries a RetryLimit allows at
        // once, so a round always ends.
        // (Stored options may hold anything: the bound is clamped, never trapping.)
        let retriesInRound = Int(clamping: min(max(state.options.retryLimit, 0), Int64(Int32.max)))
        do {
        for _ in 0...(min(state.branches.count, Int(Int32.max)) * 2 + 4 + retriesInRound) {
            let now = clock.now()
            switch mode.decide(state, now: now) {
            case .done:
                break
            case let .wait(dueUs):
                if dueUs != state.nextDueUs {
                    record(.retryScheduled(.with { $0.dueUs = dueUs; $0.retryInterval = state.retryInterval }))
                }
            case let .changeStatus(status, reason):
                logger.info("transaction \(state.status.dtmName) → \(status.dtmName)", metadata: ["gid": "\(gid)", "reason": "\(reason)"])
                record(.statusChanged(.with { $0.from = state.status; $0.to = status; $0.reason = reason; $0.decidedAtUs = now }))
                statusChangePending = true
                continue
            case let .call(refs):
                if statusChangePending {
                    try await flush()
                    for append in appends { try await append.durable() }
                    appends.removeAll()
                    statusChangePending = false
                }
                // The claim (taken just before the round) is renewed before a set of calls once a
                // third of its lease has passed; lost to another node (the lease ran out), the
                // round ends and that node drives the transaction.
                if ContinuousClock.now - claimedAt > roundLease / 3 {
                    guard try await store.claim(gid, lease: roundLease) else {
                        logger.warning("the claim on the transaction was lost; the round ends", metadata: ["gid": "\(gid)"])
                        break
                    }
                    claimedAt = .now
                }
                let outcomes = try await call(refs, of: state, mode: mode, decidedAt: now, record: record, flush: flush)
                branchesInTrouble = branchesInTrouble || outcomes.contains { $0.outcome == .error || $0.outcome == .ongoing }
                if !mode.decidesAfterEveryCall(state),
                   let retry = RetryPolicy.afterRound(outcomes, state: state, failureIsFinal: mode.failureIsFinal, now: clock.now()) {
                    record(.retryScheduled(retry))
                    await alert(RetryPolicy.alerting(outcomes, mode: mode), of: state, mode: mode)
                    break
                }
                continue
            }
            break
        }
        try await flush()
        for append in appends { try await append.durable() }
        roundSucceeded = true
        } catch let conflict as StoreConflict {
            // A client request on another node changed the transaction (a shared store reports it
            // when the append is made or when it is committed): this round ends, the next one
            // starts from what the store holds (calls made meanwhile are repeated, idempotently).
            logger.info("transaction changed meanwhile (by another node, or by a workflow's own request); the round ends", metadata: ["gid": "\(gid)", "conflict": "\(conflict)"])
            // The appends before the conflicting one may still be committing; those after it fail too.
            for append in appends { try? await append.durable() }
            return try await store.transaction(gid)
        }
        return state
    }

    /// Calls `refs` (decided at `decidedAt`) concurrently and records each attempt; returns the outcomes.
    private func call(
        _ refs: [BranchRef], of state: TransactionState, mode: any TransactionMode.Type, decidedAt: Int64, record: (TransactionEvent) -> Void, flush: () async throws -> Void
    ) async throws -> [(branch: BranchRef, outcome: AttemptOutcome)] {
        var calls = [(BranchRef, Int32, BranchCall)]()
        for ref in refs {
            guard let branch = state.branch(id: ref.branchID, op: ref.op) else { continue }
            let attempt = branch.attempts == .max ? .max : branch.attempts + 1  // stored: must not trap
            record(.attemptStarted(.with {
                $0.branchID = ref.branchID; $0.op = ref.op; $0.attempt = attempt; $0.decidedAtUs = decidedAt
            }))
            calls.append((ref, attempt, BranchCall(
                gid: state.gid, transType: state.transType, branchID: ref.branchID, op: ref.op, url: branch.url,
                payload: branch.payload, headers: state.options.branchHeaders,
                timeout: Microseconds.duration(seconds: state.options.requestTimeout, clampedTo: 1...RequestBounds.requestTimeout.upperBound),
                postsEmptyPayload: mode.postsEmptyPayload, jsonRPC: state.protocol == DtmProtocol.jsonRPC)))
        }
        try await flush()
        let invoker = self.invoker
        let results = await withTaskGroup(of: (Int, BranchResult, Int64).self) { group in
            for (index, entry) in calls.enumerated() {
                let call = entry.2
                group.addTask {
                    let start = ContinuousClock.now
                    // An empty URL counts as success, as in dtm.
                    let result = call.url.isEmpty ? BranchResult(.success) : await invoker.invoke(call)
                    let elapsed = ContinuousClock.now - start
                    if !call.url.isEmpty { CoordinatorMetrics.branchCalled(url: call.url, duration: elapsed) }
                    return (index, result, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
                }
            }
            var results = [(Int, BranchResult, Int64)]()
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }
        }
        var outcomes = [(branch: BranchRef, outcome: AttemptOutcome)]()
        for (index, result, durationUs) in results {
            let (ref, attempt, _) = calls[index]
            let outcome = AttemptOutcome(result.outcome)
            record(.attemptFinished(.with {
                $0.branchID = ref.branchID
                $0.op = ref.op
                $0.attempt = attempt
                $0.outcome = outcome
                $0.durationUs = durationUs
                $0.error = result.message
            }))
            DtmMetrics.branchCalled(model: state.transType, branchID: ref.branchID, op: ref.op, outcome: outcome)
            if result.outcome != .success {
                let final = mode.failureIsFinal(op: ref.op)
                let note = result.outcome == .failure && !final ? " (dtm semantics: this op is retried until it succeeds)" : ""
                logger.warning("branch \(ref) answered \(result.outcome)\(note)", metadata: ["gid": "\(state.gid)", "error": "\(result.message)"])
            }
            outcomes.append((ref, outcome))
        }
        return outcomes
    }

    /// dtm's alerts for the branches in `refs` that erred, once the transaction's retry count
    /// (from its retry interval, just doubled) reaches AlertRetryLimit; bookkeeping calls
    /// (QueryPrepared, a workflow's callback) are never reported.
    private func alert(_ refs: [BranchRef], of state: TransactionState, mode: any TransactionMode.Type) async {
        guard let alerts else { return }
        let count = RetryPolicy.retryCount(interval: state.retryInterval, base: state.options.retryInterval)
        guard count >= alerts.retryLimit else { return }
        for ref in refs {
            guard let branch = state.branch(id: ref.branchID, op: ref.op), !mode.isBookkeeping(branch) else { continue }
            await alerts.sender.send(BranchAlert(
                gid: state.gid, status: state.status.dtmName, branch: branch.url, error: branch.lastError, retryCount: count))
        }
    }

    /// Appends a client command's `events`, decided on `existing`, and waits until they are durable.
    private func record(_ events: [TransactionEvent], gid: String, on existing: TransactionState?) async throws {
        guard !events.isEmpty else { return }
        try await store.append(events, to: gid, expectedVersion: existing?.version).durable()
    }

    static func waitResultMessage(_ state: TransactionState?) -> String {
        guard let state else { return "transaction not found" }
        if !state.rollbackReason.isEmpty { return state.rollbackReason }
        let lastError = state.branches.filter { !$0.lastError.isEmpty }.max { $0.updateTimeUs < $1.updateTimeUs }?.lastError
        return "transaction is \(state.status.dtmName)" + (lastError.map { ": \($0)" } ?? "")
    }
}

extension AttemptOutcome {
    /// How a branch's answer is recorded.
    public init(_ result: DtmResult) {
        switch result {
        case .success: self = .success
        case .failure: self = .failure
        case .ongoing: self = .ongoing
        case .error: self = .error
        }
    }
}

extension DtmResult {
    /// What a recorded branch outcome was, in dtm's words (anything unknown is an error).
    public init(_ outcome: AttemptOutcome) {
        switch outcome {
        case .success: self = .success
        case .failure: self = .failure
        case .ongoing: self = .ongoing
        case .error, .unspecified, .UNRECOGNIZED: self = .error
        }
    }
}
