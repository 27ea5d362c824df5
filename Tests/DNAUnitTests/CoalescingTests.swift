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

@Suite("Back-off")
struct BackoffTests {
    @Test("delays double from the first one up to the maximum")
    func doubling() {
        let backoff = Backoff(first: .milliseconds(50), maximum: .seconds(2))
        let delays = (0...9).map { backoff.delay(afterFailures: $0) / .milliseconds(1) }
        #expect(delays == [50, 50, 100, 200, 400, 800, 1600, 2000, 2000, 2000])
    }

    @Test("huge delays do not overflow, and a maximum below the first delay is the first delay")
    func extremes() {
        let huge = Backoff(first: .seconds(Int64.max / 3), maximum: .seconds(Int64.max))
        #expect(huge.delay(afterFailures: 2) == .seconds(Int64.max / 3 * 2))
        #expect(huge.delay(afterFailures: 3) == .seconds(Int64.max))
        #expect(huge.delay(afterFailures: Int.max) == .seconds(Int64.max))
        let inverted = Backoff(first: .seconds(1), maximum: .milliseconds(10))
        #expect(inverted.delay(afterFailures: 1) == .seconds(1))
        #expect(inverted.delay(afterFailures: 5) == .seconds(1))
    }
}
