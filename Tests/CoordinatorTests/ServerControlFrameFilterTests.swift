@testable import Coordinator
import DTMWire
@testable import Invokers
@testable import Modes
import NIOCore
import NIOEmbedded
import Testing

/// The responder answers the server's PINGs itself and passes every other frame on unchanged,
/// however the bytes are split across reads.
@Suite struct ServerControlFrameFilterTests {
    func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0xFF), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    @Test(arguments: [1, 3, 7, 1000])
    func pingsAreAnsweredAndEverythingElsePassesUnchanged(chunk: Int) throws {
        let settings = frame(type: 4, payload: [0, 3, 0, 0, 0, 100])
        let ping = frame(type: 6, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let pingAck = frame(type: 6, flags: 1, payload: [9, 9, 9, 9, 9, 9, 9, 9])
        let headers = frame(type: 1, flags: 4, stream: 1, payload: Array(repeating: 0xAB, count: 20))
        let data = frame(type: 0, flags: 1, stream: 1, payload: Array(repeating: 0xCD, count: 50))
        let inbound = settings + ping + headers + ping + pingAck + data
        let channel = EmbeddedChannel(handler: ServerControlFrameFilter())
        var offset = 0
        while offset < inbound.count {
            let end = min(offset + chunk, inbound.count)
            try channel.writeInbound(ByteBuffer(bytes: inbound[offset..<end]))
            offset = end
        }
        var passed = [UInt8]()
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { passed += Array(buffer.readableBytesView) }
        #expect(passed == settings + headers + pingAck + data)
        var answered = [UInt8]()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { answered += Array(buffer.readableBytesView) }
        let ack = frame(type: 6, flags: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(answered == ack + ack)
        _ = try channel.finish()
    }

    @Test func aNoErrorResetAfterACompleteResponseIsDroppedAndOthersPass() throws {
        let response = frame(type: 1, flags: 4, stream: 3, payload: [1, 2])
        let trailers = frame(type: 1, flags: 5, stream: 3, payload: [3])
        let resetDone = frame(type: 3, stream: 3, payload: [0, 0, 0, 0])
        let resetCancel = frame(type: 3, stream: 5, payload: [0, 0, 0, 8])
        let resetOpen = frame(type: 3, stream: 7, payload: [0, 0, 0, 0])
        let inbound = response + trailers + resetDone + resetCancel + resetOpen + resetDone
        let channel = EmbeddedChannel(handler: ServerControlFrameFilter())
        try channel.writeInbound(ByteBuffer(bytes: inbound))
        var passed = [UInt8]()
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { passed += Array(buffer.readableBytesView) }
        // The first NO_ERROR reset of the ended stream 3 is dropped; a reset with an error code, one
        // of a stream still open, and a second one of stream 3 pass to the HTTP/2 handler.
        #expect(passed == response + trailers + resetCancel + resetOpen + resetDone)
        _ = try channel.finish()
    }
}
