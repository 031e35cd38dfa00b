@testable import Coordinator
import NIOCore
import NIOEmbedded
import Testing

/// The responder answers the server's PINGs itself and passes every other frame on unchanged,
/// however the bytes are split across reads.
@Suite struct ServerPingResponderTests {
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
        let channel = EmbeddedChannel(handler: ServerPingResponder())
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
}
