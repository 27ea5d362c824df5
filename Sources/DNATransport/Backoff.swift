/// How long to wait after failures in a row: `first` after the first, doubling after each
/// one more, never more than `maximum`. The package's one back-off: reconnecting links,
/// commit retries, stage retries and polls, alarm retries. Pure: the caller counts the
/// failures (and starts over after a success).
package struct Backoff: Sendable, Equatable {
    package let first: Duration
    package let maximum: Duration

    /// A `maximum` below `first` is `first`.
    package init(first: Duration, maximum: Duration) {
        self.first = first
        self.maximum = Swift.max(first, maximum)
    }

    /// The wait after `failures` failures in a row (`first` for one, or fewer).
    package func delay(afterFailures failures: Int) -> Duration {
        guard first > .zero else { return .zero }
        var wait = first
        var doublings = failures - 1
        while doublings > 0, wait < maximum {
            // Doubling a huge delay must not overflow.
            wait = wait > maximum / 2 ? maximum : wait * 2
            doublings -= 1
        }
        return Swift.min(wait, maximum)
    }
}
