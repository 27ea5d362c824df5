import NIOCore
import Testing

@testable import DNATransport

@Suite("Flush pacing")
struct FlushPacerTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("a link that sends one request per flush (sequential calls) never waits")
    func sequentialCallsFlushAtOnce() {
        var pacer = FlushPacer(window: .microseconds(100))
        #expect(pacer.flushTime(now: start) == nil, "never flushed: at once")
        pacer.flushed(at: start, requests: 1)
        #expect(pacer.flushTime(now: start + .microseconds(10)) == nil, "a short round trip is not delayed")
        pacer.flushed(at: start + .microseconds(10), requests: FlushPacer.streamThreshold - 1)
        #expect(pacer.flushTime(now: start + .microseconds(20)) == nil)
    }

    @Test("a streaming link flushes at most once per window, and at once when the window is over")
    func streamsArePaced() {
        var pacer = FlushPacer(window: .microseconds(100))
        pacer.flushed(at: start, requests: FlushPacer.streamThreshold)
        #expect(pacer.flushTime(now: start + .microseconds(30)) == start + .microseconds(100))
        #expect(pacer.flushTime(now: start + .microseconds(99)) == start + .microseconds(100))
        #expect(pacer.flushTime(now: start + .microseconds(100)) == nil, "window over: at once")
        // The stream ends: the next flush carries one request, and then nothing waits.
        pacer.flushed(at: start + .microseconds(100), requests: 1)
        #expect(pacer.flushTime(now: start + .microseconds(110)) == nil)
        var unpaced = FlushPacer(window: .zero)
        unpaced.flushed(at: start, requests: 1_000)
        #expect(unpaced.flushTime(now: start) == nil, "a zero window never delays")
    }
}
