@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

/// Non-ASCII header values leave unindexed (so HPACK's String == can never substitute an
/// equivalent earlier value); everything else passes as it was.
@Suite struct LiteralNonASCIIHeadersTests {
    @Test func nonASCIIValuesAreNeverIndexedAndOtherFramesPass() throws {
        let channel = EmbeddedChannel(handler: LiteralNonASCIIHeaders())
        var headers = HPACKHeaders()
        headers.add(name: "dtm-gid", value: "cafe\u{301}")
        headers.add(name: "dtm-op", value: "action")
        headers.add(name: "x-secret", value: "s\u{E9}", indexing: .neverIndexed)
        try channel.writeOutbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        try channel.writeOutbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: [1])))))
        guard case let .headers(sent)? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no headers frame")
            return
        }
        let entries = sent.headers.map { ($0.name, $0.value, $0.indexable) }
        #expect(entries.count == 3)
        #expect(entries[0].1.hasSameBytes(as: "cafe\u{301}") && entries[0].2 == .nonIndexable)
        #expect(entries[1].1 == "action" && entries[1].2 == .indexable)
        #expect(entries[2].2 == .neverIndexed, "a never-indexed header stays so")
        guard case .data? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("the data frame did not pass")
            return
        }
        _ = try channel.finish()
    }
}
