import ByteIdentity
import DTMWire
import Foundation
@testable import Modes
import Projections
import Testing

@Suite struct TopicsTests {
    func record(_ change: KVChanged, over state: KVState? = nil) -> KVState? {
        applyKV(RecordedEvent(seq: 1, time: 5, gid: KVStream.id(cat: change.cat, key: change.key), event: .kvChanged(change)), to: state)
    }

    @Test func subscribeAndUnsubscribeKeepDtmsListAndErrors() throws {
        let first = try Topics.subscribe(nil, topic: "t", url: "h:1/p.S/A", remark: "r")
        #expect(first.value == #"[{"url":"h:1/p.S/A","remark":"r"}]"#)
        let state = record(first)
        let second = try Topics.subscribe(state, topic: "t", url: "http://h/x?a=1&b=2", remark: "")
        #expect(second.value == #"[{"url":"h:1/p.S/A","remark":"r"},{"url":"http://h/x?a=1&b=2","remark":""}]"#)
        #expect(throws: RequestError.refused("this url exists")) { try Topics.subscribe(state, topic: "t", url: "h:1/p.S/A", remark: "") }
        #expect(throws: RequestError.refused("empty topic")) { try Topics.subscribe(nil, topic: "", url: "h:1/p.S/A", remark: "") }
        #expect(throws: RequestError.refused("empty url")) { try Topics.subscribe(nil, topic: "t", url: "", remark: "") }
        #expect(throws: RequestError.refused("no such a topic")) { try Topics.unsubscribe(nil, topic: "t", url: "x") }
        #expect(throws: RequestError.refused("no such an url ")) { try Topics.unsubscribe(state, topic: "t", url: "x") }
        let emptied = try Topics.unsubscribe(state, topic: "t", url: "h:1/p.S/A")
        #expect(emptied.value == "[]")
        #expect(throws: RequestError.refused("this topic is empty")) { try Topics.unsubscribe(record(emptied, over: state), topic: "t", url: "x") }
        #expect(throws: RequestError.refused("storage: NotFound")) { try Topics.delete(nil, topic: "t") }
        #expect(try Topics.delete(state, topic: "t").deleted)
    }

    @Test func msgActionsToATopicBecomeOneBranchPerSubscriber() throws {
        var request = TransactionRequest()
        request.gid = "g"
        request.transType = "msg"
        request.steps = #"[{"action":"topic://t"},{"action":"h:1/p.S/B"}]"#
        request.payloads = [Data("e".utf8), Data("b".utf8)]
        #expect(TransactionCreation.topics(in: request) == ["t".exact])
        let two = [Subscriber(url: "h:1/p.S/X"), Subscriber(url: "h:1/p.S/Y")]
        let created = try TransactionCreation.created(request, status: .submitted, defaults: TransactionDefaults(), now: 1, subscribers: ["t".exact: two])
        #expect(created.branches.map { "\($0.branchID) \($0.url) \(String(decoding: $0.payload, as: UTF8.self))" } == [
            "01-01 h:1/p.S/X e", "01-02 h:1/p.S/Y e", "02 h:1/p.S/B b"])
        let one = try TransactionCreation.created(request, status: .submitted, defaults: TransactionDefaults(), now: 1, subscribers: ["t".exact: [two[0]]])
        #expect(one.branches.first?.branchID == "01")
        #expect(throws: RequestError.refused("topic not found", internal: true)) {
            try TransactionCreation.created(request, status: .submitted, defaults: TransactionDefaults(), now: 1)
        }
        request.transType = "saga"
        #expect(TransactionCreation.topics(in: request).isEmpty, "only a msg sends to topics")
    }
}
