import NIOCore

/// When a link flushes. A link that is streaming — its last flush carried at least
/// ``streamThreshold`` requests — flushes at most once per `window`, so a stream of casts
/// goes out in large writes rather than one wake-up and one syscall every few messages.
/// Otherwise it flushes at once: sequential calls (one request per flush) never wait,
/// however short the round trip.
struct FlushPacer: Sendable, Equatable {
    /// Requests in one flush from which the link counts as streaming.
    static let streamThreshold = 4

    let window: TimeAmount
    private var lastFlush = NIODeadline.distantPast
    private var lastFlushRequests = 0

    init(window: TimeAmount) {
        self.window = window
    }

    /// When to flush what was just queued: `nil` for at once, else the deadline.
    func flushTime(now: NIODeadline) -> NIODeadline? {
        guard lastFlushRequests >= Self.streamThreshold else { return nil }
        let earliest = lastFlush + window
        return earliest > now ? earliest : nil
    }

    mutating func flushed(at now: NIODeadline, requests: Int) {
        lastFlush = now
        lastFlushRequests = requests
    }
}
