import NIOCore
import Testing

@testable import DNATransport

@Suite("Flush pacing")
struct FlushPacerTests {
    @Test("an idle link flushes at once; a busy one at most once per window")
    func pacing() {
        var pacer = FlushPacer(window: .microseconds(100))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        #expect(pacer.flushTime(now: start) == nil, "never flushed: at once")
        pacer.flushed(at: start)
        #expect(pacer.flushTime(now: start + .microseconds(30)) == start + .microseconds(100))
        #expect(pacer.flushTime(now: start + .microseconds(99)) == start + .microseconds(100))
        #expect(pacer.flushTime(now: start + .microseconds(100)) == nil, "window over: at once")
        #expect(pacer.flushTime(now: start + .seconds(1)) == nil)
        var unpaced = FlushPacer(window: .zero)
        unpaced.flushed(at: start)
        #expect(unpaced.flushTime(now: start) == nil, "a zero window never delays")
    }
}
