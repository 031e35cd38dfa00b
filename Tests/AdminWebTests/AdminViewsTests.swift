@testable import AdminWeb
import Foundation
import Projections
import Testing
import TransactionStore

/// What the admin pages make of states and events, without a server.
@Suite struct AdminViewsTests {
    @Test func theTimelineShowsAttemptsWithOutcomeDurationAndError() {
        let events = [
            RecordedEvent(seq: 7, time: 1_000_000, gid: "g", event: .attemptStarted(.with { $0.branchID = "02"; $0.op = "action"; $0.attempt = 3 })),
            RecordedEvent(seq: 8, time: 1_004_000, gid: "g", event: .attemptFinished(.with {
                $0.branchID = "02"; $0.op = "action"; $0.attempt = 3; $0.outcome = .error; $0.durationUs = 12_345; $0.error = "connection refused"
            })),
            RecordedEvent(seq: 9, time: 1_004_000, gid: "g", event: .retryScheduled(.with { $0.dueUs = 21_004_000; $0.retryInterval = 20 })),
            RecordedEvent(seq: 10, time: 1_005_000, gid: "g", event: .statusChanged(.with {
                $0.from = .submitted; $0.to = .aborting; $0.reason = "TransIn refused"
            })),
        ]
        let timeline = AdminViews.timeline(events)
        #expect(timeline.map { $0["detail"] as? String } == [
            "call 02 action, attempt 3",
            "02 action, attempt 3: ERROR in 12 ms",
            "next look at 1970-01-01 00:00:21.004Z (after 20000 ms; interval 20 s)",
            "submitted → aborting",
        ])
        #expect(timeline[1]["error"] as? String == "connection refused")
        #expect(timeline[3]["error"] as? String == "TransIn refused")
        #expect(timeline.map { $0["kind"] as? String } == ["call", "bad", "retry", "status"])
    }

    @Test func payloadsShowAsHexAndAsTextWhenTheyAreText() {
        let json = AdminViews.payload(Data(#"{"b":1,"a":"x"}"#.utf8))
        #expect(json["text"] as? String == "{\n  \"a\" : \"x\",\n  \"b\" : 1\n}")
        #expect((json["hex"] as? String)?.hasPrefix("7b 22 62") == true)
        let binary = AdminViews.payload(Data([0x08, 0x1e, 0xff]))
        #expect(binary["text"] == nil)  // not UTF-8: hex only
        #expect(binary["hex"] as? String == "08 1e ff")
        #expect(AdminViews.payload(Data()).isEmpty)
    }

    @Test func filtersAreReadFromTheQueryAndBadOnesNamed() throws {
        var query = AdminViews.ListQuery(status: "failed", transType: "saga", gidPrefix: "caf\u{E9}", from: "2026-12-01", to: "2026-12-01")
        let filter = try query.filter().get()
        #expect(filter.status == .failed)
        #expect(filter.gidPrefix == Array("caf\u{E9}".utf8))
        let span = try #require(filter.createdThrough) - (try #require(filter.createdFrom))
        #expect(span == 86_399_999_999)
        // A prefix is bytes: the decomposed é is another gid.
        var decomposed = TransactionState()
        decomposed.gid = "cafe\u{301}-1"
        decomposed.status = .failed
        decomposed.transType = "saga"
        decomposed.createTimeUs = filter.createdFrom ?? 0
        #expect(!filter.accepts(decomposed))
        decomposed.gid = "caf\u{E9}-1"
        #expect(filter.accepts(decomposed))
        query.status = "done"
        #expect(throws: AdminPageError.invalidParameter("status", "one of prepared, submitted, aborting, succeed, failed")) { try query.filter().get() }
        query = AdminViews.ListQuery(from: "yesterday")
        #expect(throws: AdminPageError.self) { try query.filter().get() }
        #expect(AdminViews.ListQuery(status: "failed", gidPrefix: "a b").queryString(page: "p1") == "status=failed&gid_prefix=a%20b&page=p1")
    }

    @Test func transactionPathsKeepTheGidAsOneSegment() {
        #expect(AdminPages.transactionPath("/admin/transactions/a%2Fb") ?? ("", nil) == ("a/b", nil))
        #expect(AdminPages.transactionPath("/admin/transactions/g1/retry") ?? ("", nil) == ("g1", "retry"))
        #expect(AdminPages.transactionPath("/admin/transactions/") == nil)
        #expect(AdminPages.transactionPath("/admin/transactions/a/b/c") == nil)
        #expect(AdminViews.detailPath("a/b c") == "/admin/transactions/a%2Fb%20c")
    }

    @Test func theDetailPageReportsABrokenChain() {
        var state = TransactionState()
        state.gid = "g"
        state.status = .failed
        let event = RecordedEvent(seq: 3, time: 1, gid: "g", event: .statusChanged(.with { $0.from = .aborting; $0.to = .failed }))
        let broken = AdminViews.detail(state, audited: AuditedHistory(
            events: [event], hashes: [[0xab, 0x01]], problems: ["event 3 does not chain to event 2"], checked: "links"))
        #expect(broken["chainVerified"] as? Bool == false)
        #expect(broken["chainText"] as? String == "Hash chain BROKEN: event 3 does not chain to event 2")
        #expect((broken["timeline"] as? [[String: Any]])?.first?["hash"] as? String == "ab01")
        let unkept = AdminViews.detail(state, audited: AuditedHistory(events: [event], hashes: [], problems: [], checked: "this store keeps no hash chain"))
        #expect(unkept["chainText"] as? String == "This store keeps no hash chain")
        #expect((unkept["timeline"] as? [[String: Any]])?.first?["hash"] == nil)
    }

    @Test func theTemplatesRender() {
        let renderer = AdminPages.Renderer()
        var state = TransactionState()
        state.gid = "<script>g</script>"
        state.status = .succeed
        let response = renderer.page("detail", AdminViews.detail(state, audited: AuditedHistory(events: [], hashes: [], problems: [], checked: "x")))
        #expect(response.status == .ok)
        let html = AdminPages.Renderer().library.render(AdminViews.detail(state, audited: AuditedHistory(events: [], hashes: [], problems: [], checked: "x")), withTemplate: "detail") ?? ""
        #expect(html.contains("&lt;script&gt;g&lt;/script&gt;"))  // escaped, never markup
        #expect(!html.contains("<script>g"))
        #expect(html.contains("</html>"))
    }
}
