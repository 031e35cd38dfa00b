@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import ByteIdentity
import EventLog
import Foundation
import Projections
import Testing

/// Numbers a client can send are bounded at validation, and arithmetic on stored values
/// saturates instead of trapping.
@Suite struct NumberBoundsTests {
    let defaults = TransactionDefaults()

    func refusal(_ change: (inout TransactionRequest) -> Void, status: TransactionStatus = .submitted) -> String? {
        var request = sagaRequest()
        change(&request)
        return invalidMessage { _ = try TransactionCreation.created(request, status: status, defaults: defaults, now: 1_700_000_000_000_000) }
    }

    @Test func everyDurationAndCountHasAnUpperBoundNamedInTheRefusal() {
        let cases: [(String, (inout TransactionRequest) -> Void)] = [
            ("TimeoutToFail", { $0.timeoutToFail = 10_000_000_000_000 }),
            ("TimeoutToFail", { $0.timeoutToFail = .max }),
            ("TimeoutToFail", { $0.timeoutToFail = -1 }),
            ("RetryInterval", { $0.retryInterval = 10_000_000_000_000 }),
            ("RequestTimeout", { $0.requestTimeout = .max }),
            ("RetryLimit", { $0.retryLimit = .max }),
            ("CustomedData.delay", { $0.customData = #"{"delay": 1e13}"# }),
            ("CustomedData.delay", { $0.customData = #"{"delay": 1e300}"# }),
            ("CustomedData.delay", { $0.customData = #"{"delay": -5}"# }),
            ("CustomedData.orders", { $0.customData = #"{"orders": {"1": [1e300]}}"# }),
        ]
        for (field, change) in cases {
            for status in [TransactionStatus.submitted, .prepared] {
                let message = refusal(change, status: status)
                #expect(message?.contains(field) == true, "\(field): \(message ?? "accepted")")
            }
        }
        #expect(refusal { $0.timeoutToFail = 9_300_000_000_000 }?.contains("between 0 and 315360000 seconds") == true)
        #expect(refusal { $0.timeoutToFail = RequestBounds.timeoutToFail.upperBound } == nil, "the bound itself is allowed")
        #expect(refusal { $0.customData = #"{"delay": 315360000}"# } == nil)
    }

    @Test func jsonNumbersOutsideInt64AreRefusedNotWrapped() {
        #expect(RequestBounds.wholeNumber(NSNumber(value: 1e19)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: -1e19)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: 1.5)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: Double.infinity)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: Double.nan)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: 42)) == 42)
        #expect(RequestBounds.wholeNumber(NSNumber(value: Int64.max)) == .max)
        #expect(RequestBounds.wholeNumber(NSNumber(value: UInt64.max)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: 0x1p63)) == nil)
        #expect(RequestBounds.wholeNumber(NSNumber(value: -0x1p63)) == .min)
        for text in ["1e19", "-1e19", "18446744073709551615", "9223372036854775807", "1e300", "12.0"] {
            let parsed = try? JSONSerialization.jsonObject(with: Data("[\(text)]".utf8)) as? [NSNumber]
            let number = try? #require(parsed?.first)
            let whole = number.flatMap(RequestBounds.wholeNumber)
            #expect(whole == Int64(text) ?? (text == "12.0" ? 12 : nil), "\(text) → \(String(describing: whole))")
        }
        #expect(RequestBounds.wholeNumber(NSNumber(value: -3)) == -3)
    }

    @Test func timeArithmeticSaturates() {
        #expect(Microseconds.of(seconds: .max) == .max)
        #expect(Microseconds.of(seconds: .min) == .min)
        #expect(Microseconds.after(seconds: 10_000_000_000_000, from: 1_700_000_000_000_000) == .max)
        #expect(Microseconds.after(seconds: 2, from: 10) == 2_000_010)
        #expect(Microseconds.adding(.min, to: -1) == .min)
    }

    /// A state as an older build (with no bounds) could have stored it.
    func storedState(timeoutToFail: Int64 = 0, retryInterval: Int64 = 10, requestTimeout: Int64 = 3) -> TransactionState {
        var state = TransactionState()
        state.gid = "stored"
        state.transType = "saga"
        state.status = .submitted
        state.createTimeUs = 1_700_000_000_000_000
        state.options.timeoutToFail = timeoutToFail
        state.options.retryInterval = retryInterval
        state.options.requestTimeout = requestTimeout
        state.retryInterval = retryInterval
        var action = BranchState()
        action.branchID = "01"
        action.op = "action"
        action.url = "localhost:1/busi.Busi/A1"
        state.branches = [action]
        return state
    }

    @Test func storedOutOfRangeValuesAreDecidedAndScheduledWithoutTrapping() {
        let now: Int64 = 1_700_000_000_000_001
        for mode in TransactionModes.all {
            for status in [TransactionStatus.prepared, .submitted, .aborting] {
                var state = storedState(timeoutToFail: .max)
                state.transType = mode.transType
                state.status = status
                _ = mode.decide(state, now: now)
                _ = mode.decide(state, now: .max)
            }
        }
        #expect(timeoutDue(storedState(timeoutToFail: .max)) == .max)
        #expect(timeoutReason(storedState(timeoutToFail: 10_000_000_000_000), now: now) == nil)
        let huge = storedState(retryInterval: .max)
        let retry = RetryPolicy.afterRound([(BranchRef("01", "action"), .error)], state: huge, failureIsFinal: { _ in false }, now: now)
        #expect(retry?.dueUs == .max)
        #expect(retry?.retryInterval == .max)
        let nearMax = storedState(retryInterval: Int64.max / 2 + 1)
        #expect(RetryPolicy.afterRound([(BranchRef("01", "action"), .error)], state: nearMax, failureIsFinal: { _ in false }, now: now) != nil)
        #expect(Microseconds.duration(seconds: .max, clampedTo: 1...RequestBounds.requestTimeout.upperBound) == .seconds(86_400))
        #expect(Microseconds.duration(seconds: 0, clampedTo: 1...86_400) == .seconds(1))
        #expect(SagaMode.stepIndex("-9223372036854775808") == nil)
        #expect(SagaMode.stepIndex("02") == 1)
    }
}

/// Identity is bytes: canonically equivalent gids are two transactions.
@Suite struct ExactIdentityTests {
    static let composed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    @Test func exactStringsDifferWhereSwiftStringsAreEqual() {
        #expect(Self.composed == Self.decomposed, "Swift's String == is Unicode equivalence")
        #expect(Self.composed.exact != Self.decomposed.exact)
        #expect(Set([Self.composed.exact, Self.decomposed.exact]).count == 2)
        #expect(Self.composed.exact == ExactString("caf\u{E9}"))
        #expect(!Self.composed.hasSameBytes(as: Self.decomposed))
        #expect("\u{212A}" == "K", "Kelvin sign equals K under String ==")
        #expect("\u{212A}".exact != "K".exact)
        #expect(["b".exact, "a".exact, "ab".exact].sorted() == ["a".exact, "ab".exact, "b".exact])
    }

    @Test func locksOfEquivalentGidsAreIndependent() async {
        let locks = GidLocks()
        await locks.withLock(Self.composed) {
            #expect(locks.isHeld(Self.composed))
            #expect(!locks.isHeld(Self.decomposed))
            // Would deadlock if the two gids shared a lock.
            await locks.withLock(Self.decomposed) { #expect(locks.isHeld(Self.decomposed)) }
        }
    }

    @Test func applyIgnoresAnEventOfAnEquivalentButDifferentGid() {
        var created = TransactionCreated()
        created.transType = "saga"
        created.status = .submitted
        let state = apply(RecordedEvent(seq: 1, time: 1, gid: Self.composed, event: .created(created)), to: nil)
        let forced = apply(
            RecordedEvent(seq: 2, time: 2, gid: Self.decomposed, event: .statusChanged(.with { $0.from = .submitted; $0.to = .failed })),
            to: state)
        #expect(forced?.status == .submitted)
    }

    @Test func branchesWithEquivalentIdsAreDistinct() {
        var state = TransactionState()
        var first = BranchState()
        first.branchID = Self.composed
        first.op = "confirm"
        var second = first
        second.branchID = Self.decomposed
        state.branches = [first, second]
        #expect(state.branchIndex(id: Self.decomposed, op: "confirm") == 1)
    }
}
