public import ByteIdentity
import DTMWire
import Foundation
public import Projections

/// Turns a validated request into the `created` event: branches generated per mode (a msg action
/// `topic://<name>` becomes one branch per subscriber), options with the server's defaults filled in.
public enum TransactionCreation {
    /// The topics the request's msg actions name (`topic://<name>`): what `created` needs the
    /// subscribers of. Steps are checked by `created`.
    public static func topics(in request: TransactionRequest) -> [ExactString] {
        guard TransactionModes.mode(request.transType)?.expandsTopics == true, let steps = try? parseSteps(request.steps) else { return [] }
        return steps.compactMap { $0["action"].flatMap(Topics.topic(inActionURL:))?.exact }
    }

    /// The `created` event of `request`; `subscribers` holds the current subscribers of each topic
    /// in `topics(in:)`.
    public static func created(
        _ request: TransactionRequest, status: TransactionStatus, defaults: TransactionDefaults, now: Int64,
        subscribers: [ExactString: [Subscriber]] = [:]
    ) throws -> TransactionCreated {
        try RequestValidation.gid(request.gid)
        let mode = try TransactionModes.requested(request.transType)
        _ = try RequestBounds.check(request.timeoutToFail, in: RequestBounds.timeoutToFail, field: "TimeoutToFail")
        _ = try RequestBounds.check(request.retryInterval, in: RequestBounds.retryInterval, field: "RetryInterval")
        _ = try RequestBounds.check(request.requestTimeout, in: RequestBounds.requestTimeout, field: "RequestTimeout")
        _ = try RequestBounds.check(request.retryLimit, in: RequestBounds.retryLimit, field: "RetryLimit", unit: "attempts")
        let steps = try parseSteps(request.steps)
        if steps.count != request.payloads.count {
            throw RequestError.invalidArgument("Steps has \(steps.count) steps but BinPayloads has \(request.payloads.count) payloads")
        }
        let custom = try parseCustomData(request.customData, stepCount: steps.count)
        try RequestValidation.url(request.queryPrepared, field: "QueryPrepared")

        var created = TransactionCreated()
        created.transType = mode.transType
        created.status = status
        created.protocol = request.transport
        created.customData = request.customData
        created.steps = request.steps
        created.queryPrepared = request.queryPrepared
        created.reqExtra = request.reqExtra
        created.rollbackReason = request.rollbackReason
        created.options = TransactionOptions.with {
            $0.waitResult = request.waitResult
            $0.timeoutToFail = request.timeoutToFail > 0 ? request.timeoutToFail : (mode.timesOutByDefault ? defaults.timeoutToFail : 0)
            $0.retryInterval = request.retryInterval > 0 ? request.retryInterval : defaults.retryInterval
            $0.requestTimeout = request.requestTimeout > 0 ? request.requestTimeout : defaults.requestTimeout
            $0.retryLimit = request.retryLimit
            $0.branchHeaders = request.branchHeaders
            $0.concurrent = custom.concurrent
            $0.stepOrders = custom.orders
        }
        created.retryInterval = created.options.retryInterval
        created.branches = try branches(mode: mode, steps: steps, payloads: request.payloads, subscribers: subscribers)
            + mode.extraBranches(request)
        switch status {
        case .submitted: created.nextDueUs = Microseconds.after(seconds: custom.delaySeconds, from: now)
        case .prepared:
            (created.nextDueUs, created.retryInterval) = mode.preparedSchedule(request, options: created.options, defaults: defaults, now: now)
        default: created.nextDueUs = 0
        }
        return created
    }

    static func branches(
        mode: any TransactionMode.Type, steps: [[String: String]], payloads: [Data], subscribers: [ExactString: [Subscriber]] = [:]
    ) throws -> [BranchSpec] {
        var specs = [BranchSpec]()
        let ops = mode.stepOps
        for (index, step) in steps.enumerated() where !ops.isEmpty {
            let branchID = String(format: "%02d", index + 1)
            guard let action = step["action"] else {
                throw RequestError.invalidArgument("Steps[\(index)] has no \"action\" URL")
            }
            if mode.expandsTopics, let topic = Topics.topic(inActionURL: action) {
                // dtm: one branch per subscriber, `NN` for a single one, else `NN-01`, `NN-02`, ….
                let urls = (subscribers[topic.exact] ?? []).map(\.url)
                guard !urls.isEmpty else { throw RequestError.refused("topic not found", internal: true) }
                for (number, url) in urls.enumerated() {
                    try RequestValidation.url(url, field: "the subscriber of topic '\(topic)'")
                    specs.append(BranchSpec.with {
                        $0.branchID = urls.count == 1 ? branchID : branchID + String(format: "-%02d", number + 1)
                        $0.op = "action"
                        $0.url = url
                        $0.payload = index < payloads.count ? payloads[index] : Data()
                    })
                }
                continue
            }
            for op in ops {
                let url = step[op] ?? ""
                try RequestValidation.url(url, field: "Steps[\(index)].\(op)")
                specs.append(BranchSpec.with {
                    $0.branchID = branchID
                    $0.op = op
                    $0.url = url
                    $0.payload = index < payloads.count ? payloads[index] : Data()
                })
            }
        }
        return specs
    }

    static func parseSteps(_ steps: String) throws -> [[String: String]] {
        let trimmed = steps.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed != "null" else { return [] }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(trimmed.utf8))
        } catch {
            throw RequestError.invalidArgument("Steps is not valid JSON: expected an array of {\"op\": \"url\"} objects")
        }
        guard let array = parsed as? [Any] else {
            throw RequestError.invalidArgument("Steps must be a JSON array of {\"op\": \"url\"} objects")
        }
        return try array.enumerated().map { index, element in
            guard let object = element as? [String: Any] else {
                throw RequestError.invalidArgument("Steps[\(index)] must be an object mapping op to URL")
            }
            return try object.mapValues { value in
                guard let url = value as? String else {
                    throw RequestError.invalidArgument("Steps[\(index)] has a URL that is not a string")
                }
                return url
            }
        }
    }

    struct CustomData {
        var concurrent = false
        var orders: [StepOrder] = []
        var delaySeconds: Int64 = 0
    }

    static func parseCustomData(_ text: String, stepCount: Int) throws -> CustomData {
        var custom = CustomData()
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed != "null" else { return custom }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
            throw RequestError.invalidArgument("CustomedData must be a JSON object")
        }
        if let concurrent = object["concurrent"] {
            guard let flag = concurrent as? Bool else { throw RequestError.invalidArgument("CustomedData.concurrent must be true or false") }
            custom.concurrent = flag
        }
        if let delay = object["delay"] {
            guard let number = delay as? NSNumber, let seconds = RequestBounds.wholeNumber(number) else {
                throw RequestError.invalidArgument("CustomedData.delay must be a whole number of seconds")
            }
            custom.delaySeconds = try RequestBounds.check(seconds, in: RequestBounds.delay, field: "CustomedData.delay")
        }
        if let orders = object["orders"], !(orders is NSNull) {
            guard let map = orders as? [String: Any] else {
                throw RequestError.invalidArgument("CustomedData.orders must map a step index to the indexes it waits for")
            }
            for (key, value) in map {
                guard let step = Int32(key), step >= 0, Int(step) < stepCount,
                      let after = (value as? [Any])?.compactMap({ ($0 as? NSNumber).flatMap(RequestBounds.wholeNumber).flatMap { Int32(exactly: $0) } }),
                      after.count == (value as? [Any])?.count,
                      after.allSatisfy({ $0 >= 0 && Int($0) < stepCount && $0 != step })
                else {
                    throw RequestError.invalidArgument("CustomedData.orders[\"\(key)\"] must list step indexes below \(stepCount) other than itself")
                }
                custom.orders.append(StepOrder.with { $0.step = step; $0.after = after })
            }
            custom.orders.sort { $0.step < $1.step }
            try rejectCycles(custom.orders)
        }
        return custom
    }

    private static func rejectCycles(_ orders: [StepOrder]) throws {
        let edges = Dictionary(orders.map { ($0.step, $0.after) }, uniquingKeysWith: { $1 })
        var state = [Int32: Bool]() // false = visiting, true = done
        func visit(_ step: Int32) throws {
            if state[step] == true { return }
            if state[step] == false { throw RequestError.invalidArgument("CustomedData.orders has a cycle through step \(step)") }
            state[step] = false
            for next in edges[step] ?? [] { try visit(next) }
            state[step] = true
        }
        for step in edges.keys.sorted() { try visit(step) }
    }
}
