import NIOCore

/// Answers the server's HTTP/2 PING frames on a client connection before they reach NIOHTTP2,
/// and keeps from it the RST_STREAM(NO_ERROR) that ends a response already complete.
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
/// The same limit applies to inbound RST_STREAM frames, and grpc-go sends RST_STREAM(NO_ERROR)
/// after a response whenever it finished before the client's END_STREAM arrived (allowed by
/// RFC 9113 §8.1: "stop sending, the response is complete"). For a stream whose response the
/// server already ended, such a reset tells the client nothing it needs — its own END_STREAM is
/// already on its way and closes the stream — so it is dropped here instead of being counted.
/// Any other RST_STREAM passes unchanged.
///
/// Plaintext connections only: it reads the bytes as they come off the socket.
final class ServerControlFrameFilter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let frameHeaderSize = 9
    private static let dataType: UInt8 = 0
    private static let headersType: UInt8 = 1
    private static let resetType: UInt8 = 3
    private static let pingType: UInt8 = 6
    private static let ackFlag: UInt8 = 0x1
    private static let endStreamFlag: UInt8 = 0x1
    /// How many recently ended streams are remembered (a reset follows its response at once).
    private static let endedStreamMemory = 1024

    /// Bytes of a frame that has not fully arrived yet.
    private var pending: ByteBuffer?
    /// Streams whose response the server ended, most recent last.
    private var endedStreams: [UInt32] = []

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
            let frameEnd = cursor + Self.frameHeaderSize + length
            if type == Self.pingType, flags & Self.ackFlag == 0, length == 8, stream == 0,
               let opaque = bytes.getSlice(at: cursor + Self.frameHeaderSize, length: 8) {
                forward(bytes, from: run, to: cursor, context: context)
                answer(opaque, context: context)
                run = frameEnd
            } else if type == Self.resetType, length == 4, let stream = stream.map({ $0 & 0x7FFF_FFFF }),
                      bytes.getInteger(at: cursor + Self.frameHeaderSize, as: UInt32.self) == 0,
                      let ended = endedStreams.lastIndex(of: stream) {
                endedStreams.remove(at: ended)
                forward(bytes, from: run, to: cursor, context: context)
                run = frameEnd
            } else if type == Self.headersType || type == Self.dataType, flags & Self.endStreamFlag != 0,
                      let stream = stream.map({ $0 & 0x7FFF_FFFF }) {
                endedStreams.append(stream)
                if endedStreams.count > Self.endedStreamMemory { endedStreams.removeFirst(endedStreams.count / 2) }
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
