import NIOCore
import NIOHPACK
import NIOHTTP2

/// Sends header values that are not all ASCII as HPACK literals, never indexed.
///
/// NIOHPACK (swift-nio-http2 1.46) looks header values up in a connection's dynamic table with
/// Swift's `String ==`, which is Unicode equivalence: a `dtm-gid` of `cafe\u{301}` sent after
/// `caf\u{E9}` on the same connection would go out as the earlier value's bytes. Values that are
/// never indexed never enter the table, so it only ever holds ASCII values, and two different
/// ASCII strings are never equal: every header then carries exactly its own bytes. Installed on
/// each HTTP/2 stream of a branch connection, in front of the HTTP/2 handler.
final class LiteralNonASCIIHeaders: ChannelOutboundHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case var .headers(payload) = unwrapOutboundIn(data),
              payload.headers.contains(where: { !Self.isASCII($0.value) })
        else {
            context.write(data, promise: promise)
            return
        }
        var headers = HPACKHeaders()
        for header in payload.headers {
            headers.add(name: header.name, value: header.value, indexing: Self.isASCII(header.value) || header.indexable == .neverIndexed ? header.indexable : .nonIndexable)
        }
        payload.headers = headers
        context.write(wrapOutboundOut(.headers(payload)), promise: promise)
    }

    static func isASCII(_ value: String) -> Bool { value.utf8.allSatisfy { $0 < 0x80 } }
}
