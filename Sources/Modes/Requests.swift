public import DTMWire
public import Foundation
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
    public var transport = DtmProtocol.grpc

    public init() {}
}

extension TransactionRequest {
    /// dtm's request as it arrives over either gateway (the HTTP gateway reads its JSON body into
    /// the same message), from `transport` (`grpc` or `http`): the one conversion from the wire.
    public init(_ wire: Dtmgimp_DtmRequest, transport: String) {
        self.init()
        gid = wire.gid
        transType = wire.transType
        steps = wire.steps
        payloads = wire.binPayloads
        customData = wire.customedData
        queryPrepared = wire.queryPrepared
        waitResult = wire.transOptions.waitResult
        timeoutToFail = wire.transOptions.timeoutToFail
        retryInterval = wire.transOptions.retryInterval
        requestTimeout = wire.transOptions.requestTimeout
        retryLimit = wire.transOptions.retryLimit
        branchHeaders = wire.transOptions.branchHeaders
        reqExtra = wire.reqExtra
        rollbackReason = wire.rollbackReason
        self.transport = transport
    }
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

/// Checks of identifiers and URLs a client sends, each refusal naming the field.
public enum RequestValidation {
    /// A gid: 1 to 128 bytes, no control characters, no `/`.
    public static func gid(_ gid: String) throws {
        guard !gid.isEmpty else { throw RequestError.invalidArgument("Gid must not be empty") }
        guard gid.utf8.count <= maximumGidLength else {
            throw RequestError.invalidArgument("Gid is \(gid.utf8.count) bytes long; at most \(maximumGidLength) are allowed")
        }
        guard !gid.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "/" }) else {
            throw RequestError.invalidArgument("Gid '\(gid)' contains a control character or '/'")
        }
    }

    /// A branch URL: empty, an HTTP URL with a host, or a gRPC branch URL (`GrpcBranchURL`).
    public static func url(_ url: String, field: String) throws {
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
