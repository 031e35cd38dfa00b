public import GRPCNIOTransportHTTP2
import NIOCore
import NIOHTTP2

extension HTTP2ServerTransport.Posix.Config {
    /// Makes a branch server accept the calls of dtm's Go server, which sends
    /// `content-type: application/grpc+dtm_raw` (its raw-bytes codec) where grpc-swift-nio-transport
    /// accepts only `application/grpc` and `application/grpc+proto` and answers HTTP 415 otherwise.
    /// A small handler at the front of each HTTP/2 stream reads that content type as
    /// `application/grpc`; the bytes are the same (a gRPC message is its payload either way).
    /// Other content types are left alone, so they are refused as before.
    public mutating func acceptDtmRawContentType() {
        let previous = channelDebuggingCallbacks.onAcceptHTTP2Stream
        channelDebuggingCallbacks.onAcceptHTTP2Stream = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(DtmRawContentTypeHandler(), position: .first)
            }.flatMap { previous?(channel) ?? channel.eventLoop.makeSucceededVoidFuture() }
        }
    }
}

/// Reads a request's `application/grpc+dtm_raw` content type as `application/grpc`.
final class DtmRawContentTypeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    /// What dtm's Go server sends (`dtmgimp`'s raw codec is named `dtm_raw`).
    static let dtmRaw = "application/grpc+dtm_raw"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case var .headers(headers) = unwrapInboundIn(data),
              headers.headers.first(name: "content-type") == Self.dtmRaw else {
            context.fireChannelRead(data)
            return
        }
        headers.headers.replaceOrAdd(name: "content-type", value: "application/grpc")
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
    }
}
