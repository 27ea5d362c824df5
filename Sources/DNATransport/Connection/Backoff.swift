import NIOCore

/// Reconnection delays: `initial`, doubling up to `maximum`; `reset()` after a success.
struct Backoff: Sendable, Equatable {
    let initial: TimeAmount
    let maximum: TimeAmount
    private var upcoming: TimeAmount

    init(initial: TimeAmount, maximum: TimeAmount) {
        self.initial = initial
        self.maximum = Swift.max(initial, maximum)
        self.upcoming = initial
    }

    /// The delay to wait after this failure; the next failure waits twice as long.
    mutating func next() -> TimeAmount {
        let delay = upcoming
        // Doubling a huge delay must not overflow.
        upcoming = delay.nanoseconds > maximum.nanoseconds / 2 ? maximum : Swift.min(delay * 2, maximum)
        return delay
    }

    mutating func reset() {
        upcoming = initial
    }
}
