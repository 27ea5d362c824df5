import Logging
import NIOCore

/// Our connection to a peer: runs the client side of the handshake (verifying the
/// server's proof before proving anything), then hands responses to the delegate. Any
/// failure is reported to the ``OutgoingLink`` (which backs off and tells the delegate)
/// and closes the connection.
final class OutboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let link: OutgoingLink
    private let attempt: UInt64
    private let core: TransportCore
    private var handshake: ClientHandshakeStateMachine
    private var accumulator = FrameAccumulator()
    private var logger: Logger
    private var timeout: Scheduled<Void>?
    private var authenticated = false
    private var closing = false

    init(link: OutgoingLink, attempt: UInt64, core: TransportCore) {
        self.link = link
        self.attempt = attempt
        self.core = core
        self.handshake = ClientHandshakeStateMachine(
            cluster: core.configuration.cluster, nodeID: core.configuration.nodeID, proofs: core.proofs)
        self.logger = core.logger
        logger[metadataKey: "peer.address"] = "\(link.peer)"
        logger[metadataKey: "connection"] = "outbound"
    }

    func channelActive(context: ChannelHandlerContext) {
        let handshakeTimeout = TimeAmount(clamping: core.configuration.handshakeTimeout)
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
            self.fail(context: context, TransportError(.handshakeFailed, "handshake timed out"))
        }
        var buffer = context.channel.allocator.buffer(capacity: 128)
        FrameCodec.encode(handshake.start(), into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        link.writabilityChanged(attempt: attempt, writable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        accumulator.append(unwrapInboundIn(data))
        var delegate: (any ClusterTransportDelegate)?
        do throws(FrameError) {
            while !closing {
                let limit = authenticated ? core.configuration.maxFrameSize : core.handshakeMaxFrameSize
                guard let frame = try accumulator.next(maxFrameSize: limit) else { break }
                if authenticated {
                    guard case .response(let response) = frame else {
                        fail(
                            context: context,
                            TransportError(
                                .protocolViolation, "unexpected \(frame.type) frame on an outbound connection"))
                        return
                    }
                    if delegate == nil { delegate = core.delegate.current }
                    delegate?.transport(didReceive: response, from: link.peer)
                } else {
                    handleHandshake(frame, context: context)
                }
            }
        } catch {
            fail(context: context, error.transportError)
        }
    }

    private func handleHandshake(_ frame: Frame, context: ChannelHandlerContext) {
        switch handshake.receive(frame) {
        case .send(let reply):
            var buffer = context.channel.allocator.buffer(capacity: 128)
            FrameCodec.encode(reply, into: &buffer)
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .authenticated(let peerNodeID):
            timeout?.cancel()
            timeout = nil
            authenticated = true
            logger[metadataKey: "peer.node"] = "\(peerNodeID)"
            logger.debug("link established")
            if !link.handshakeCompleted(attempt: attempt, channel: context.channel) {
                // The transport shut down (or moved on) while we were handshaking.
                closing = true
                context.close(promise: nil)
            }
        case .fail(let reason):
            fail(context: context, TransportError(.handshakeFailed, reason))
        case .ignore:
            break
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: TransportError) {
        guard !closing else { return }
        closing = true
        timeout?.cancel()
        // The link logs the failure as a warning (once per attempt); this is the detail.
        logger.debug(
            "closing outbound connection", metadata: ["reason": "\(error.message)", "error.code": "\(error.code)"])
        link.failed(attempt: attempt, error: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if !closing {
            closing = true
            let what = authenticated ? "connection closed by the peer" : "connection closed during the handshake"
            link.failed(
                attempt: attempt, error: TransportError(authenticated ? .unreachable : .handshakeFailed, what))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, TransportError(.unreachable, "connection error: \(error)"))
    }
}
