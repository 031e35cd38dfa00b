import DTMWire
import Foundation
import Projections

/// A prepare/submit/abort request as both gateways receive it (dtm's DtmRequest).
public struct TransactionRequest: Sendable {
    public var gid = ""
    public var transType = ""
    /// dtm's Steps JSON: an array of objects mapping op → URL.
    public var steps = ""
    /// The body of each step's branches, in step order.
    public var payloads: [Data] = []
    /// Mode-specific JSON: saga `{"concurrent":…,"orders":…}`, msg `{"delay":N}`.
    public var customData = ""
    public var queryPrepared = ""
    public var waitResult = false
    public var timeoutToFail: Int64 = 0
    public var retryInterval: Int64 = 0
    public var requestTimeout: Int64 = 0
    public var retryLimit: Int64 = 0
    public var branchHeaders: [String: String] = [:]
    public var reqExtra: [String: String] = [:]
    public var rollbackReason = ""
    /// `grpc` or `http`: the gateway the request came through.
    public var transport = "grpc"

    public init() {}
}

/// A RegisterBranch request (dtm's DtmBranchRequest).
public struct BranchRegistrationRequest: Sendable {
    public var gid = ""
    public var transType = ""
    public var branchID = ""
    /// TCC: `confirm` and `cancel` URLs; XA: `url`.
    public var data: [String: String] = [:]
    public var payload = Data()

    public init() {}
}

/// The server-side defaults a transaction's options fall back to (dtm's config keys).
public struct TransactionDefaults: Sendable {
    /// Seconds before a prepared msg/tcc/xa (or a saga that asked for it) times out.
    public var timeoutToFail: Int64 = 35
    /// Base seconds between retries.
    public var retryInterval: Int64 = 10
    /// Seconds a branch call may take.
    public var requestTimeout: Int64 = 3

    public init() {}
}

/// The longest gid accepted (dtm stores gids in a 128-character column).
public let maximumGidLength = 128

/// The range each number a client can send must fall in. The upper bounds keep every time
/// computed from them (µs since 1970) far inside Int64, so nothing a client sends can make the
/// coordinator's arithmetic overflow; requests outside them are refused naming the field.
public enum RequestBounds {
    /// A day, in seconds.
    public static let day: Int64 = 86_400
    /// TimeoutToFail, seconds (0: the server default): at most ten years.
    public static let timeoutToFail: ClosedRange<Int64> = 0...(3650 * day)
    /// RetryInterval, seconds (0: the server default): at most thirty days.
    public static let retryInterval: ClosedRange<Int64> = 0...(30 * day)
    /// RequestTimeout, seconds (0: the server default): at most a day.
    public static let requestTimeout: ClosedRange<Int64> = 0...day
    /// RetryLimit, attempts (0: no limit).
    public static let retryLimit: ClosedRange<Int64> = 0...Int64(Int32.max)
    /// A msg's CustomedData `delay`, seconds: at most ten years.
    public static let delay: ClosedRange<Int64> = 0...(3650 * day)
    /// Create times in listing filters, milliseconds since 1970: through the year 9999.
    public static let createTimeMilliseconds: ClosedRange<Int64> = 0...253_402_300_799_999

    /// The integer a JSON number holds; nil for fractions and numbers outside Int64.
    public static func wholeNumber(_ number: NSNumber) -> Int64? {
        switch UInt8(bitPattern: number.objCType.pointee) {
        case UInt8(ascii: "f"), UInt8(ascii: "d"):
            // Range-checked as a double first: converting an out-of-range double would trap.
            let value = number.doubleValue
            guard value == value.rounded(), value >= -0x1p63, value < 0x1p63 else { return nil }
            return Int64(value)
        case UInt8(ascii: "Q"), UInt8(ascii: "L"):
            return Int64(exactly: number.uint64Value)
        default:
            return number.int64Value
        }
    }

    /// `value` if it lies in `range`, else InvalidArgument naming `field`, the range and the value.
    public static func check(_ value: Int64, in range: ClosedRange<Int64>, field: String, unit: String = "seconds") throws -> Int64 {
        guard range.contains(value) else {
            throw RequestError.invalidArgument("\(field) must be between \(range.lowerBound) and \(range.upperBound) \(unit), got \(value)")
        }
        return value
    }
}

enum RequestValidation {
    static func gid(_ gid: String) throws {
        guard !gid.isEmpty else { throw RequestError.invalidArgument("Gid must not be empty") }
        guard gid.utf8.count <= maximumGidLength else {
            throw RequestError.invalidArgument("Gid is \(gid.utf8.count) bytes long; at most \(maximumGidLength) are allowed")
        }
        guard !gid.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "/" }) else {
            throw RequestError.invalidArgument("Gid '\(gid)' contains a control character or '/'")
        }
    }

    static func mode(_ transType: String) throws -> any TransactionMode.Type {
        if transType == "workflow" {
            throw RequestError.unimplemented("TransType 'workflow' is not supported by this server yet")
        }
        guard let mode = Modes.mode(transType) else {
            throw RequestError.invalidArgument("TransType '\(transType)' is unknown; expected one of saga, msg, tcc, xa")
        }
        return mode
    }

    static func url(_ url: String, field: String) throws {
        guard !url.isEmpty else { return }
        if isHTTPBranchURL(url) {
            guard let parsed = URLComponents(string: url), parsed.host?.isEmpty == false else {
                throw RequestError.invalidArgument("\(field): '\(url)' is not a valid HTTP URL")
            }
            return
        }
        do {
            _ = try GrpcBranchURL(parsing: url)
        } catch let RequestError.invalidArgument(message) {
            throw RequestError.invalidArgument("\(field): \(message)")
        }
    }

}

/// Turns a validated request into the `created` event: branches generated per mode, options
/// with the server's defaults filled in.
enum TransactionCreation {
    static func created(
        _ request: TransactionRequest, status: TransactionStatus, defaults: TransactionDefaults, now: Int64
    ) throws -> TransactionCreated {
        try RequestValidation.gid(request.gid)
        let mode = try RequestValidation.mode(request.transType)
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
            $0.timeoutToFail = request.timeoutToFail > 0 ? request.timeoutToFail : (mode == Saga.self ? 0 : defaults.timeoutToFail)
            $0.retryInterval = request.retryInterval > 0 ? request.retryInterval : defaults.retryInterval
            $0.requestTimeout = request.requestTimeout > 0 ? request.requestTimeout : defaults.requestTimeout
            $0.retryLimit = request.retryLimit
            $0.branchHeaders = request.branchHeaders
            $0.concurrent = custom.concurrent
            $0.stepOrders = custom.orders
        }
        created.retryInterval = created.options.retryInterval
        created.branches = try branches(mode: mode, steps: steps, payloads: request.payloads, queryPrepared: request.queryPrepared)
        switch status {
        case .submitted: created.nextDueUs = Microseconds.after(seconds: custom.delaySeconds, from: now)
        case .prepared: created.nextDueUs = created.options.timeoutToFail > 0 ? Microseconds.after(seconds: created.options.timeoutToFail, from: now) : 0
        default: created.nextDueUs = 0
        }
        return created
    }

    static func branches(mode: any TransactionMode.Type, steps: [[String: String]], payloads: [Data], queryPrepared: String) throws -> [BranchSpec] {
        var specs = [BranchSpec]()
        let ops: [String]
        switch mode.transType {
        case Saga.transType: ops = ["compensate", "action"]
        case Msg.transType: ops = ["action"]
        default: ops = []
        }
        for (index, step) in steps.enumerated() where !ops.isEmpty {
            let branchID = String(format: "%02d", index + 1)
            guard step["action"] != nil else {
                throw RequestError.invalidArgument("Steps[\(index)] has no \"action\" URL")
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
        if mode == Msg.self, !queryPrepared.isEmpty {
            specs.append(BranchSpec.with {
                $0.branchID = Msg.queryPrepared.branchID
                $0.op = Msg.queryPrepared.op
                $0.url = queryPrepared
            })
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
