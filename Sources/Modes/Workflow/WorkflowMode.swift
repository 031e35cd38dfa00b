public import DTMWire
import Foundation
public import Projections
import SwiftProtobuf

/// WORKFLOW (dtm's newest mode): the application runs the workflow itself and the server keeps its
/// progress. PrepareWorkflow creates it prepared (a repeat changes nothing and answers the progress
/// so far); each step's final outcome is registered as a branch with its status and result; Submit
/// records the end (`succeed` or `failed`, with the rollback reason and the result) — the server
/// runs nothing. While prepared and due, the server calls the application back (branch `00`, op =
/// the workflow's name, the input as the payload) so it resumes the workflow; the answer changes
/// nothing, the next call comes a server RetryInterval later, and the server never fails a
/// workflow by itself (TimeoutToFail and RetryLimit do not apply).
public enum WorkflowMode: TransactionMode {
    public static let transType = "workflow"
    public static let stepOps: [String] = []
    public static let timesOutByDefault = false
    /// The branch id of the callback calls.
    public static let callbackBranchID = "00"

    /// dtm's CustomedData of a workflow: `{"name": <workflow name>, "data": <input, base64 or null>}`;
    /// nil when there is none (a Submit carries none).
    static func nameAndInput(_ customData: String) throws -> (name: String, input: Data)? {
        guard !customData.isEmpty, customData != "null" else { return nil }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(customData.utf8))) as? [String: Any],
              let name = object["name"] as? String, !name.isEmpty
        else {
            throw RequestError.invalidArgument("CustomedData of a workflow must be {\"name\": <workflow name>, \"data\": <input, base64>}")
        }
        switch object["data"] {
        case nil, is NSNull:
            return (name, Data())
        case let text as String:
            guard let input = Data(base64Encoded: text) else {
                throw RequestError.invalidArgument("CustomedData.data of a workflow must be base64")
            }
            return (name, input)
        default:
            throw RequestError.invalidArgument("CustomedData.data of a workflow must be base64 or null")
        }
    }

    /// The callback: branch `00`, op = the workflow's name, calling QueryPrepared with the input
    /// (as `workflow.WorkflowData` over gRPC, raw over HTTP).
    public static func extraBranches(_ request: TransactionRequest) throws -> [BranchSpec] {
        guard let (name, input) = try nameAndInput(request.customData), !request.queryPrepared.isEmpty else { return [] }
        let payload: Data = isHTTPBranchURL(request.queryPrepared)
            ? input : try Workflow_WorkflowData.with { $0.data = input }.serializedBytes()
        return [BranchSpec.with {
            $0.branchID = callbackBranchID
            $0.op = name
            $0.url = request.queryPrepared
            $0.payload = payload
        }]
    }

    public static func isBookkeeping(_ branch: BranchState) -> Bool {
        branch.branchID == callbackBranchID
    }

    /// dtm: first due after the transaction's RetryInterval if it set one, else its TimeoutToFail
    /// if shorter than the server's RetryInterval, else the server's; then every server RetryInterval.
    public static func preparedSchedule(
        _ request: TransactionRequest, options: TransactionOptions, defaults: TransactionDefaults, now: Int64
    ) -> (dueUs: Int64, retryInterval: Int64) {
        let first: Int64
        if request.retryInterval > 0 {
            first = request.retryInterval
        } else if request.timeoutToFail > 0, request.timeoutToFail < defaults.retryInterval {
            first = request.timeoutToFail
        } else {
            first = defaults.retryInterval
        }
        return (Microseconds.after(seconds: first, from: now), defaults.retryInterval)
    }

    /// PrepareWorkflow of a known gid changes nothing, whatever its status.
    public static func prepare(_ created: TransactionCreated, onto existing: TransactionState?) throws -> [TransactionEvent] {
        existing == nil ? [.created(created)] : []
    }

    /// The end of a prepared workflow, as the application reports it in ReqExtra: `status`
    /// (`succeed` or `failed`), `rollback_reason`, `result` (base64, stored as sent).
    public static func submit(_ created: TransactionCreated, onto existing: TransactionState?, now: Int64) throws -> [TransactionEvent] {
        let extra = created.reqExtra
        guard let status = TransactionStatus(dtmName: extra["status"] ?? ""), status.isTerminal else {
            throw RequestError.invalidArgument("ReqExtra.status of a workflow Submit must be succeed or failed")
        }
        guard let existing, existing.status == .prepared else {
            // dtm (boltdb) finds no prepared record to update.
            throw RequestError.refused("storage: NotFound", internal: true)
        }
        var events: [TransactionEvent] = [.statusChanged(.with {
            $0.from = .prepared
            $0.to = status
            $0.reason = extra["rollback_reason"] ?? ""
            $0.byClient = true
        })]
        if let result = extra["result"], !result.isEmpty {
            events.append(.workflowResult(.with { $0.result = Data(result.utf8) }))
        }
        return events
    }

    /// A step's outcome: branch `BranchID` with op `Data.op`, status `Data.status`, its result
    /// (or error text) as the payload.
    public static func registeredBranches(_ request: BranchRegistrationRequest) throws -> [BranchRegistered] {
        let op = request.data["op"] ?? ""
        guard !op.isEmpty, op.utf8.count <= 64 else { throw RequestError.invalidArgument("Data.op of a workflow branch must be 1 to 64 characters") }
        guard let status = BranchStatus.allCases.first(where: { !$0.dtmName.isEmpty && $0.dtmName == request.data["status"] }) else {
            throw RequestError.invalidArgument("Data.status of a workflow branch must be prepared, succeed or failed")
        }
        return [BranchRegistered.with {
            $0.branch = BranchSpec.with {
                $0.branchID = request.branchID
                $0.op = op
                $0.payload = request.payload
            }
            $0.status = status
        }]
    }

    /// A progress is recorded once: the same branch and op again is dtm's unique-key conflict.
    public static func register(_ branches: [BranchRegistered], on state: TransactionState) throws -> [TransactionEvent] {
        if branches.contains(where: { state.branch(id: $0.branch.branchID, op: $0.branch.op) != nil }) {
            throw RequestError.refused("storage: UniqueKeyConflict")
        }
        return branches.map { .branchRegistered($0) }
    }

    public static func failureIsFinal(op: String) -> Bool { true }

    /// The callback's answer changes nothing: after each call, decide schedules the next.
    public static func decidesAfterEveryCall(_ state: TransactionState) -> Bool { true }

    public static func decide(_ state: TransactionState, now: Int64) -> Step {
        guard state.status == .prepared else {
            return state.status.isTerminal ? .done : .wait(dueUs: 0)
        }
        guard let callback = state.branches.first(where: isBookkeeping) else { return .wait(dueUs: 0) }
        // Called since it became due: the next call one retry interval after that one.
        if callback.attempts > 0, callback.updateTimeUs >= state.nextDueUs {
            return .wait(dueUs: Microseconds.after(seconds: max(state.retryInterval, 1), from: callback.updateTimeUs))
        }
        guard state.nextDueUs > 0, now >= state.nextDueUs else { return .wait(dueUs: state.nextDueUs) }
        return .call([callback.ref])
    }
}
