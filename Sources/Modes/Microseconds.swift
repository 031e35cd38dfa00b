/// Time arithmetic on values that come from clients or from disk (µs since 1970, durations in
/// seconds). It saturates instead of trapping: a log written with an out-of-range value by an
/// older build must still open and be driven, and no request can make dtmd trap.
public enum Microseconds {
    /// `seconds` in microseconds, saturated to Int64's range.
    public static func of(seconds: Int64) -> Int64 {
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : product
    }

    /// `seconds` after `time` (µs), saturated to Int64's range.
    public static func after(seconds: Int64, from time: Int64) -> Int64 {
        adding(of(seconds: seconds), to: time)
    }

    /// `a + b`, saturated to Int64's range.
    public static func adding(_ a: Int64, to b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (a < 0 ? .min : .max) : sum
    }

    /// A duration of `seconds`, clamped to `range` (a branch call's deadline must stay sane even
    /// for a stored value no current request could set).
    public static func duration(seconds: Int64, clampedTo range: ClosedRange<Int64>) -> Duration {
        .seconds(min(max(seconds, range.lowerBound), range.upperBound))
    }
}
