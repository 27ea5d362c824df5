package import NIOCore

/// The decisions of one outgoing link: when to connect, what to do with a request in each
/// phase, when to flush, how long to back off after a failure.
///
/// Phases: idle → connecting (requests queue, in order) → connected (requests coalesce
/// into one flush, paced by ``FlushPacer``) → on any failure, backing off (until the delay
/// elapses; the next send after it reconnects). The delay starts at `initial` and doubles
/// to `maximum`; a completed handshake resets it. Every connection attempt has a number;
/// events of an older attempt are ignored, so a late close cannot tear down a newer
/// connection.
///
/// Pure: events and instants in, actions out. ``OutgoingLink`` keeps it behind a lock with
/// the bytes it counts; the cluster simulation runs it with simulated connections.
package struct LinkStateMachine<Channel> {
    enum Phase {
        case idle
        case connecting(attempt: UInt64)
        case connected(attempt: UInt64, channel: Channel)
        case backingOff(until: NIODeadline)
        case shutDown
    }

    private(set) var phase = Phase.idle
    /// Bytes of requests queued and not yet handed to the channel.
    package private(set) var queuedBytes = 0
    /// How many requests they are.
    package private(set) var queuedRequests = 0
    /// How many of them are casts (lost unseen if the attempt fails).
    package private(set) var queuedCasts = 0
    private var flushScheduled = false
    /// The channel's writability: while the peer does not keep up, requests stay queued
    /// (bounded by `maxQueuedBytes`) instead of in NIO's unbounded buffer.
    private var writable = true
    private var pacer: FlushPacer
    private var lastAttempt: UInt64 = 0
    private let backoff: Backoff
    /// Attempts failed since the last handshake that succeeded.
    private var failuresInARow = 0
    let maxQueuedBytes: Int

    package init(initialDelay: TimeAmount, maximumDelay: TimeAmount, flushWindow: TimeAmount, maxQueuedBytes: Int) {
        backoff = Backoff(first: .nanoseconds(initialDelay.nanoseconds), maximum: .nanoseconds(maximumDelay.nanoseconds))
        pacer = FlushPacer(window: flushWindow)
        self.maxQueuedBytes = maxQueuedBytes
    }

    package var isConnected: Bool {
        if case .connected = phase { return true }
        return false
    }

    /// The current connection attempt (what requests queued now travel on).
    package var attempt: UInt64 { lastAttempt }

    /// The connected channel, if any.
    package var channel: Channel? {
        if case .connected(_, let channel) = phase { return channel }
        return nil
    }

    /// The request just queued is a cast.
    package mutating func queuedCast() { queuedCasts += 1 }

    package enum SendAction {
        /// Queued behind the connection being made, or behind a flush already scheduled.
        case queued
        /// Queued; start connection attempt `attempt`.
        case connect(attempt: UInt64)
        /// Queued; flush the channel at `at` (`nil`: at once).
        case flush(Channel, attempt: UInt64, at: NIODeadline?)
        /// Not queued: the link is backing off or shut down.
        case failFast(TransportError)
        /// Not queued: the link holds `queued` bytes the peer has not taken.
        case overloaded(queued: Int)
    }

    /// A request of `length` bytes is to be sent at `now`. On `queued`, `connect` and
    /// `flush`, the caller appends it to the queued bytes. `now` is read only when the
    /// decision needs it (backing off, or scheduling a flush), not for every request.
    package mutating func send(length: Int, now: @autoclosure () -> NIODeadline) -> SendAction {
        if queuedBytes > 0 && queuedBytes + length > maxQueuedBytes { return .overloaded(queued: queuedBytes) }
        switch phase {
        case .shutDown:
            return .failFast(TransportError(.shutDown, "the transport is shut down"))
        case .backingOff(let until):
            let now = now()
            guard now >= until else {
                let milliseconds = (until - now).nanoseconds / 1_000_000
                return .failFast(TransportError(.unreachable, "backing off after a failure; retry in \(milliseconds) ms"))
            }
            let attempt = startConnecting()
            enqueued(length)
            return .connect(attempt: attempt)
        case .idle:
            let attempt = startConnecting()
            enqueued(length)
            return .connect(attempt: attempt)
        case .connecting:
            enqueued(length)
            return .queued
        case .connected(let attempt, let channel):
            enqueued(length)
            guard !flushScheduled, writable else { return .queued }
            flushScheduled = true
            return .flush(channel, attempt: attempt, at: pacer.flushTime(now: now()))
        }
    }

    private mutating func enqueued(_ length: Int) {
        queuedBytes += length
        queuedRequests += 1
    }

    /// A new attempt: what was queued for an older one is dropped.
    private mutating func startConnecting() -> UInt64 {
        lastAttempt += 1
        phase = .connecting(attempt: lastAttempt)
        taken()
        return lastAttempt
    }

    /// Connect now if idle or done backing off; the attempt to start, if any.
    package mutating func connectIfDisconnected(now: NIODeadline) -> UInt64? {
        switch phase {
        case .idle: break
        case .backingOff(let until) where now >= until: break
        default: return nil
        }
        return startConnecting()
    }

    /// The handshake of `attempt` succeeded: `true` if it is current (the caller writes what
    /// was queued and empties it), `false` if stale (the caller closes the channel).
    package mutating func handshakeCompleted(attempt: UInt64, channel: Channel, writable: Bool) -> Bool {
        guard case .connecting(let current) = phase, current == attempt else { return false }
        phase = .connected(attempt: attempt, channel: channel)
        failuresInARow = 0
        flushScheduled = false
        self.writable = writable
        taken()
        return true
    }

    /// A scheduled flush of `attempt` runs at `now`: the channel to write what is queued to
    /// (the caller then empties it), or `nil` if there is nothing to do.
    package mutating func flush(attempt: UInt64, now: NIODeadline) -> Channel? {
        guard case .connected(let current, let channel) = phase, current == attempt else { return nil }
        flushScheduled = false
        // Not writable: keep the requests here; a writability change flushes them.
        guard writable else { return nil }
        pacer.flushed(at: now, requests: queuedRequests)
        taken()
        return channel
    }

    /// The connection's writability changed: `true` if what is queued should go out now.
    package mutating func writabilityChanged(attempt: UInt64, writable: Bool) -> Bool {
        guard case .connected(let current, _) = phase, current == attempt else { return false }
        self.writable = writable
        return writable && !flushScheduled && queuedBytes > 0
    }

    /// `attempt` failed (connect, handshake) or its connection broke at `now`: the queue is
    /// dropped and the link backs off. Returns the delay, or `nil` if the attempt is stale.
    package mutating func failed(attempt: UInt64, now: NIODeadline) -> TimeAmount? {
        switch phase {
        case .connecting(let current) where current == attempt, .connected(let current, _) where current == attempt:
            failuresInARow += 1
            let delay = TimeAmount(clamping: backoff.delay(afterFailures: failuresInARow))
            phase = .backingOff(until: now + delay)
            taken()
            flushScheduled = false
            return delay
        default:
            return nil
        }
    }

    /// The link stops for good; later sends fail with `shutDown`.
    package mutating func shutDown() {
        phase = .shutDown
        taken()
        flushScheduled = false
    }

    private mutating func taken() {
        queuedBytes = 0
        queuedRequests = 0
        queuedCasts = 0
    }
}
