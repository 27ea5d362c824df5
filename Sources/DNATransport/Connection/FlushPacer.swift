import NIOCore

/// When a link flushes: at once if it has not flushed for `window`, else when the window
/// since its last flush ends. An idle link adds no delay; a busy one writes at most once
/// per window, in large writes.
struct FlushPacer: Sendable, Equatable {
    let window: TimeAmount
    private var lastFlush = NIODeadline.distantPast

    init(window: TimeAmount) {
        self.window = window
    }

    /// When to flush what was just queued: `nil` for at once, else the deadline.
    func flushTime(now: NIODeadline) -> NIODeadline? {
        let earliest = lastFlush + window
        return earliest > now ? earliest : nil
    }

    mutating func flushed(at now: NIODeadline) {
        lastFlush = now
    }
}
