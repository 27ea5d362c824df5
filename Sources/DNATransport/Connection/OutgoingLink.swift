import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The one outgoing connection to a peer address, and what is queued for it.
///
/// Phases: idle → connecting (requests queue, in order) → connected (requests coalesce
/// into one flush, paced by ``FlushPacer``) → on any failure, backing off (sends fail fast with
/// `linkFailed` until the delay elapses; the next send after it reconnects). The delay
/// starts at `reconnectInitialDelay` and doubles to `reconnectMaxDelay`; a completed
/// handshake resets it.
///
/// Every connection attempt has a number; callbacks from an older attempt's channel are
/// ignored, so a late close can not tear down a newer connection.
final class OutgoingLink: Sendable {
    let peer: PeerAddress
    private let core: TransportCore
    private var logger: Logger { core.logger }

    private enum Phase {
        case idle
        case connecting(attempt: UInt64)
        case connected(attempt: UInt64, channel: any Channel)
        case backingOff(until: NIODeadline)
        case shutDown
    }

    private struct State {
        var phase = Phase.idle
        /// Encoded frames not yet handed to the channel.
        var pending: ByteBuffer?
        /// How many requests `pending` holds.
        var pendingRequests = 0
        var flushScheduled = false
        /// The channel's writability: while the peer does not keep up, requests stay in
        /// `pending` (bounded by `maxQueuedBytes`) instead of NIO's unbounded buffer.
        var writable = true
        var pacer: FlushPacer
        var lastAttempt: UInt64 = 0
        var backoff: Backoff
    }

    private let state: Mutex<State>

    init(peer: PeerAddress, core: TransportCore) {
        self.peer = peer
        self.core = core
        let backoff = Backoff(
            initial: TimeAmount(clamping: core.configuration.reconnectInitialDelay),
            maximum: TimeAmount(clamping: core.configuration.reconnectMaxDelay))
        let pacer = FlushPacer(window: TimeAmount(clamping: core.configuration.flushWindow))
        self.state = Mutex(State(pacer: pacer, backoff: backoff))
    }

    private enum SendOutcome {
        case queued
        case connect(attempt: UInt64)
        case flush(any Channel, attempt: UInt64, at: NIODeadline?)
        case failFast(TransportError)
        case overloaded(queued: Int)
    }

    func send(_ request: WireRequest) throws(TransportError) {
        let length = FrameCodec.frameLength(of: request)
        let max = core.configuration.maxFrameSize
        guard length <= max else {
            refuseOversized(request, length: length, max: max)
            return
        }
        let maxQueued = core.configuration.maxQueuedBytes
        let outcome = state.withLock { state -> SendOutcome in
            let queued = state.pending?.readableBytes ?? 0
            if queued > 0 && queued + length > maxQueued { return .overloaded(queued: queued) }
            switch state.phase {
            case .shutDown:
                return .failFast(TransportError(.shutDown, "the transport is shut down"))
            case .backingOff(let until):
                let now = NIODeadline.now()
                guard now >= until else {
                    let ms = (until - now).nanoseconds / 1_000_000
                    return .failFast(
                        TransportError(.unreachable, "link to \(peer) is backing off after a failure; retry in \(ms) ms"))
                }
                return Self.startConnecting(&state, request)
            case .idle:
                return Self.startConnecting(&state, request)
            case .connecting:
                Self.append(request, to: &state)
                return .queued
            case .connected(let attempt, let channel):
                Self.append(request, to: &state)
                guard !state.flushScheduled, state.writable else { return .queued }
                state.flushScheduled = true
                return .flush(channel, attempt: attempt, at: state.pacer.flushTime(now: .now()))
            }
        }
        switch outcome {
        case .queued:
            break
        case .connect(let attempt):
            connect(attempt: attempt)
        case .flush(let channel, let attempt, nil):
            channel.eventLoop.execute { self.flush(attempt: attempt) }
        case .flush(let channel, let attempt, let deadline?):
            channel.eventLoop.scheduleTask(deadline: deadline) { self.flush(attempt: attempt) }
        case .failFast(let error):
            let peer = self.peer
            let delegate = core.delegate
            core.onEventLoop { delegate.current?.transport(linkFailed: peer, error: error) }
        case .overloaded(let queued):
            throw TransportError(
                .overloaded, "link to \(peer) holds \(queued) bytes the peer has not taken yet (maxQueuedBytes \(maxQueued))")
        }
    }

    private static func startConnecting(_ state: inout State, _ request: WireRequest?) -> SendOutcome {
        state.lastAttempt += 1
        state.phase = .connecting(attempt: state.lastAttempt)
        state.pending = nil
        state.pendingRequests = 0
        if let request { append(request, to: &state) }
        return .connect(attempt: state.lastAttempt)
    }

    /// Called on the channel's event loop when the connection's writability changes: once
    /// the peer has caught up, what queued meanwhile goes out.
    func writabilityChanged(attempt: UInt64, writable: Bool) {
        let flushNow = state.withLock { state -> Bool in
            guard case .connected(let current, _) = state.phase, current == attempt else { return false }
            state.writable = writable
            return writable && !state.flushScheduled && (state.pending?.readableBytes ?? 0) > 0
        }
        if flushNow { flush(attempt: attempt) }
    }

    /// Connects now if the link is idle or its back-off delay is over; otherwise leaves
    /// it as it is.
    func connectIfDisconnected() {
        let attempt = state.withLock { state -> UInt64? in
            switch state.phase {
            case .idle: break
            case .backingOff(let until) where NIODeadline.now() >= until: break
            default: return nil
            }
            guard case .connect(let attempt) = Self.startConnecting(&state, nil) else { return nil }
            return attempt
        }
        if let attempt { connect(attempt: attempt) }
    }

    var isConnected: Bool {
        state.withLock { state in
            if case .connected = state.phase { return true }
            return false
        }
    }

    private static func append(_ request: WireRequest, to state: inout State) {
        if state.pending == nil {
            state.pending = ByteBufferAllocator().buffer(capacity: Swift.max(1024, FrameCodec.frameLength(of: request) + 4))
        }
        FrameCodec.encode(request, into: &state.pending!)
        state.pendingRequests += 1
    }

    /// A request over `maxFrameSize` is never sent. This is not a link failure (the link is
    /// fine): a request expecting a reply gets a synthetic `payloadTooLarge` response.
    private func refuseOversized(_ request: WireRequest, length: Int, max: Int) {
        logger.warning(
            "request too large; not sent",
            metadata: [
                "peer.address": "\(peer)", "request.id": "\(request.id)", "frame.size": "\(length)",
                "frame.max": "\(max)",
            ])
        guard request.expectsReply else { return }
        let response = WireResponse(id: request.id, result: .failure(.payloadTooLarge(size: length, max: max)))
        let peer = self.peer
        let delegate = core.delegate
        core.onEventLoop { delegate.current?.transport(didReceive: response, from: peer) }
    }

    private func flush(attempt: UInt64) {
        let taken = state.withLock { state -> (any Channel, ByteBuffer?)? in
            guard case .connected(let current, let channel) = state.phase, current == attempt else { return nil }
            state.flushScheduled = false
            // Not writable: keep the requests here; writabilityChanged flushes them.
            guard state.writable else { return nil }
            state.pacer.flushed(at: .now(), requests: state.pendingRequests)
            defer {
                state.pending = nil
                state.pendingRequests = 0
            }
            return (channel, state.pending)
        }
        if let (channel, pending) = taken, let pending, pending.readableBytes > 0 {
            channel.writeAndFlush(pending, promise: nil)
        }
    }

    // MARK: Connection life-cycle

    private func connect(attempt: UInt64) {
        let core = self.core
        let configuration = core.configuration
        logger.debug("connecting", metadata: ["peer.address": "\(peer)"])
        ClientBootstrap(group: core.group)
            .connectTimeout(TimeAmount(clamping: configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    try core.register(channel)
                    try core.tls?.addClientHandlers(to: channel.pipeline.syncOperations, peer: self.peer)
                    try channel.pipeline.syncOperations.addHandler(
                        OutboundConnectionHandler(link: self, attempt: attempt, core: core))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: peer.host, port: peer.port)
            .whenFailure { error in
                let transportError =
                    (error as? TransportError)
                    ?? TransportError(.unreachable, "could not connect to \(self.peer): \(error)")
                self.failed(attempt: attempt, error: transportError)
            }
    }

    /// Called on the channel's event loop when the handshake has succeeded: writes what was
    /// queued while connecting, in order. Returns `false` if this attempt is stale (the
    /// caller closes the channel).
    func handshakeCompleted(attempt: UInt64, channel: any Channel) -> Bool {
        let result = state.withLock { state -> (accepted: Bool, pending: ByteBuffer?) in
            guard case .connecting(let current) = state.phase, current == attempt else { return (false, nil) }
            state.phase = .connected(attempt: attempt, channel: channel)
            state.backoff.reset()
            state.flushScheduled = false
            state.writable = channel.isWritable
            defer {
                state.pending = nil
                state.pendingRequests = 0
            }
            return (true, state.pending)
        }
        if let pending = result.pending, pending.readableBytes > 0 {
            channel.writeAndFlush(pending, promise: nil)
        }
        return result.accepted
    }

    /// The attempt failed (connect, handshake) or its connection broke: drop the queue,
    /// back off, tell the delegate. Only the first report of an attempt counts.
    func failed(attempt: UInt64, error: TransportError) {
        let delay = state.withLock { state -> TimeAmount? in
            switch state.phase {
            case .connecting(let current) where current == attempt, .connected(let current, _) where current == attempt:
                let delay = state.backoff.next()
                state.phase = .backingOff(until: .now() + delay)
                state.pending = nil
                state.pendingRequests = 0
                state.flushScheduled = false
                return delay
            default:
                return nil
            }
        }
        guard let delay else { return }
        logger.warning(
            "link failed; backing off",
            metadata: [
                "peer.address": "\(peer)", "error.code": "\(error.code)", "reason": "\(error.message)",
                "backoff.ms": "\(delay.nanoseconds / 1_000_000)",
            ])
        let peer = self.peer
        let delegate = core.delegate
        core.onEventLoop { delegate.current?.transport(linkFailed: peer, error: error) }
    }

    /// Stops the link for good; later sends fail with `shutDown`. Channels are closed by
    /// the transport (it tracks them all).
    func shutDown() {
        state.withLock { state in
            state.phase = .shutDown
            state.pending = nil
            state.pendingRequests = 0
            state.flushScheduled = false
        }
    }
}
