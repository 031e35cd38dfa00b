import NIOCore

/// Answers the server's HTTP/2 PING frames on a client connection before they reach NIOHTTP2.
///
/// grpc-go (every go-zero service) and gRPC C-core servers estimate bandwidth by sending a PING
/// after data arrives, about one per request on a busy connection with small messages (grpc-go
/// stops only once its window estimate reaches 16 MiB, which small unary calls never do).
/// swift-nio-http2 1.46 rate-limits inbound PING/SETTINGS frames on every connection (200 per
/// 30 s) as denial-of-service protection, and grpc-swift-nio-transport 2.9.2 does not expose
/// that limit: past ~7 calls a second the connection is closed with GOAWAY ENHANCE_YOUR_CALM,
/// every call in flight on it fails ("Stream unexpectedly closed") and new ones fail fast while
/// it reconnects ("Channel isn't ready"). A branch service is a peer dtmd was configured to call,
/// not an anonymous client, so its pings are answered here, at the byte level in front of the
/// HTTP/2 handler, exactly as HTTP/2 requires (an ACK with the same 8 bytes, at once).
///
/// Plaintext connections only: it reads the bytes as they come off the socket.
final class ServerPingResponder: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let frameHeaderSize = 9
    private static let pingType: UInt8 = 6
    private static let ackFlag: UInt8 = 0x1

    /// Bytes of a frame that has not fully arrived yet.
    private var pending: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var earlier = pending {
            earlier.writeBuffer(&bytes)
            bytes = earlier
            pending = nil
        }
        // Whole frames are passed on in runs; a PING is answered and left out. (Positions are
        // tracked apart from the reader index: `get` refuses bytes before it.)
        var run = bytes.readerIndex
        var cursor = bytes.readerIndex
        while bytes.writerIndex - cursor >= Self.frameHeaderSize,
              let length = bytes.getInteger(at: cursor, as: UInt32.self).map({ Int($0 >> 8) }),
              bytes.writerIndex - cursor >= Self.frameHeaderSize + length {
            let type = bytes.getInteger(at: cursor + 3, as: UInt8.self)
            let flags = bytes.getInteger(at: cursor + 4, as: UInt8.self) ?? 0
            let stream = bytes.getInteger(at: cursor + 5, as: UInt32.self)
            if type == Self.pingType, flags & Self.ackFlag == 0, length == 8, stream == 0,
               let opaque = bytes.getSlice(at: cursor + Self.frameHeaderSize, length: 8) {
                forward(bytes, from: run, to: cursor, context: context)
                answer(opaque, context: context)
                run = cursor + Self.frameHeaderSize + length
            }
            cursor += Self.frameHeaderSize + length
        }
        forward(bytes, from: run, to: cursor, context: context)
        if cursor < bytes.writerIndex { pending = bytes.getSlice(at: cursor, length: bytes.writerIndex - cursor) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending = nil
        context.fireChannelInactive()
    }

    private func forward(_ bytes: ByteBuffer, from start: Int, to end: Int, context: ChannelHandlerContext) {
        guard end > start, let slice = bytes.getSlice(at: start, length: end - start) else { return }
        context.fireChannelRead(wrapInboundOut(slice))
    }

    /// A PING ACK with the same opaque data. Written at the head of the pipeline, it lands between
    /// whole frames: every write from the HTTP/2 handler is complete frames, made on this event loop.
    private func answer(_ opaque: ByteBuffer, context: ChannelHandlerContext) {
        var frame = context.channel.allocator.buffer(capacity: Self.frameHeaderSize + 8)
        frame.writeInteger(UInt32(8) << 8 | UInt32(Self.pingType))
        frame.writeInteger(Self.ackFlag)
        frame.writeInteger(UInt32(0))
        var opaque = opaque
        frame.writeBuffer(&opaque)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}
