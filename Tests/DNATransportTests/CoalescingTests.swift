import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import DNATransport

@Suite("Write coalescing")
struct CoalescingTests {
    @Test("responses sent in one event-loop tick become one write, in order; none after close")
    func responsesCoalesce() throws {
        let channel = EmbeddedChannel()
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let writer = InboundWriter(channel: channel, maxFrameSize: 1 << 20, logger: Logger(label: "test"))
        let sink = ResponseSink(writer: writer, peerNodeID: "peer")
        #expect(sink.peerNodeID == "peer")
        for id in 1...100 { sink.send(WireResponse(id: UInt64(id), result: .success([UInt8(id)]))) }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "written before the flush ran")
        channel.embeddedEventLoop.run()
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "more than one write")
        var ids: [UInt64] = []
        while case .response(let response)? = try FrameCodec.decode(from: &written, maxFrameSize: 1 << 20) {
            ids.append(response.id)
        }
        #expect(ids == Array(1...100))

        // The next tick's responses are the next write.
        sink.send(WireResponse(id: 101, result: .success([])))
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)

        writer.close()
        sink.send(WireResponse(id: 102, result: .success([])))
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "written after close")
        _ = try channel.finish()
    }
}
