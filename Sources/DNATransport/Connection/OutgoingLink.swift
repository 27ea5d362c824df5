import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The one outgoing connection to a peer address, and what is queued for it. Its
/// decisions are a ``LinkStateMachine``'s; this class carries them out with NIO and keeps
/// the queued bytes.
final class OutgoingLink: Sendable {
    let peer: PeerAddress
    private let core: TransportCore
    private var logger: Logger { core.logger }

    private struct State {
        var machine: LinkStateMachine<any Channel>
        /// Encoded frames not yet handed to the channel (the machine counts them).
        var pending: ByteBuffer?

        mutating func append(_ request: WireRequest) {
            if !request.expectsReply { machine.queuedCast() }
            if pending == nil {
                pending = ByteBufferAllocator().buffer(capacity: Swift.max(1024, FrameCodec.frameLength(of: request) + 4))
            }
            FrameCodec.encode(request, into: &pending!)
        }

        mutating func take() -> ByteBuffer? {
            defer { pending = nil }
            return pending
        }
    }

    private let state: Mutex<State>

    init(peer: PeerAddress, core: TransportCore) {
        self.peer = peer
        self.core = core
        let configuration = core.configuration
        let machine = LinkStateMachine<any Channel>(
            initialDelay: TimeAmount(clamping: configuration.reconnectInitialDelay),
            maximumDelay: TimeAmount(clamping: configuration.reconnectMaxDelay),
            flushWindow: TimeAmount(clamping: configuration.flushWindow),
            maxQueuedBytes: configuration.maxQueuedBytes)
        self.state = Mutex(State(machine: machine))
    }

    func send(_ request: WireRequest, queued: (UInt64) -> Void) throws(TransportError) {
        var request = request
        let sequencer = core.configuration.sequencer
        let length = FrameCodec.frameLength(of: request)
        let max = core.configuration.maxFrameSize
        guard length <= max else {
            refuseOversized(request, length: length, max: max)
            return
        }
        let action = state.withLock { state -> LinkStateMachine<any Channel>.SendAction in
            let action = state.machine.send(length: length, now: .now())
            switch action {
            case .connect, .queued, .flush:
                // Numbered here, under the link's lock: requests leave in the order numbered.
                if request.sequence == 0 { request.sequence = sequencer.next() }
                if case .connect = action { state.pending = nil }
                state.append(request)
                queued(state.machine.attempt)
            case .failFast, .overloaded:
                break
            }
            return action
        }
        switch action {
        case .queued:
            break
        case .connect(let attempt):
            connect(attempt: attempt)
        case .flush(let channel, let attempt, nil):
            channel.eventLoop.execute { self.flush(attempt: attempt) }
        case .flush(let channel, let attempt, let deadline?):
            channel.eventLoop.scheduleTask(deadline: deadline) { self.flush(attempt: attempt) }
        case .failFast(let error):
            throw TransportError(error.code, "link to \(peer): \(error.message)")
        case .overloaded(let queued):
            throw TransportError(
                .overloaded,
                "link to \(peer) holds \(queued) bytes the peer has not taken yet (maxQueuedBytes \(core.configuration.maxQueuedBytes))")
        }
    }

    /// Called on the channel's event loop when the connection's writability changes: once
    /// the peer has caught up, what queued meanwhile goes out.
    func writabilityChanged(attempt: UInt64, writable: Bool) {
        if state.withLock({ $0.machine.writabilityChanged(attempt: attempt, writable: writable) }) { flush(attempt: attempt) }
    }

    /// Connects now if the link is idle or its back-off delay is over; otherwise leaves
    /// it as it is.
    func connectIfDisconnected() {
        let attempt = state.withLock { state -> UInt64? in
            let attempt = state.machine.connectIfDisconnected(now: .now())
            if attempt != nil { state.pending = nil }
            return attempt
        }
        if let attempt { connect(attempt: attempt) }
    }

    var isConnected: Bool { state.withLock { $0.machine.isConnected } }

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
            guard let channel = state.machine.flush(attempt: attempt, now: .now()) else { return nil }
            return (channel, state.take())
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
                    try channel.pipeline.syncOperations.addHandler(LinkByteCounter(core.metrics))
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
        let (accepted, pending) = state.withLock { state -> (Bool, ByteBuffer?) in
            guard state.machine.handshakeCompleted(attempt: attempt, channel: channel, writable: channel.isWritable) else {
                return (false, nil)
            }
            return (true, state.take())
        }
        if let pending, pending.readableBytes > 0 {
            channel.writeAndFlush(pending, promise: nil)
        }
        return accepted
    }

    /// The attempt failed (connect, handshake) or its connection broke: drop the queue,
    /// back off, tell the delegate. Only the first report of an attempt counts.
    func failed(attempt: UInt64, error: TransportError) {
        let failure = state.withLock { state -> (delay: TimeAmount, casts: Int)? in
            let casts = state.machine.queuedCasts
            guard let delay = state.machine.failed(attempt: attempt, now: .now()) else { return nil }
            state.pending = nil
            return (delay, casts)
        }
        guard let failure else { return }
        logger.warning(
            "link failed; backing off",
            metadata: [
                "peer.address": "\(peer)", "error.code": "\(error.code)", "reason": "\(error.message)",
                "backoff.ms": "\(failure.delay.nanoseconds / 1_000_000)",
            ])
        let report = LinkFailure(peer: peer, attempt: attempt, error: error, droppedCasts: failure.casts)
        let delegate = core.delegate
        core.onEventLoop { delegate.current?.transport(linkFailed: report) }
    }

    /// Stops the link for good; later sends fail with `shutDown`. Returns its channel, if
    /// connected (the transport closes the channels it tracks at shutdown).
    @discardableResult
    func shutDown() -> (any Channel)? {
        state.withLock { state in
            let channel = state.machine.channel
            state.machine.shutDown()
            state.pending = nil
            return channel
        }
    }
}
