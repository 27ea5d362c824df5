import Logging
import NIOCore
import Synchronization
import CoreMetrics

/// One connection a peer opened to us: runs the server side of the handshake, then hands
/// each request to the delegate, in arrival order, with a ``ResponseSink`` bound to this
/// connection.
///
/// Any violation (bad frame, bad handshake, timeout) closes this connection only, with a
/// warning naming the remote address and the reason.
final class InboundConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: TransportCore
    private var handshake: ServerHandshakeStateMachine
    private var accumulator = FrameAccumulator()
    private var logger: Logger
    private var timeout: Scheduled<Void>?
    private var writer: InboundWriter?
    private var sink: ResponseSink?
    private var closing = false
    /// Counted in ``TransportCore/unauthenticated`` until authenticated or closed.
    private var counted = false

    init(core: TransportCore) {
        self.core = core
        self.handshake = ServerHandshakeStateMachine(
            cluster: core.configuration.cluster, nodeID: core.configuration.nodeID, proofs: core.proofs)
        self.logger = core.logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        logger[metadataKey: "peer.address"] = "\(Self.describe(context.remoteAddress))"
        logger[metadataKey: "connection"] = "inbound"
        counted = true
        let count = core.unauthenticated.wrappingAdd(1, ordering: .relaxed).newValue
        guard count <= core.configuration.maxUnauthenticatedConnections else {
            close(
                context: context,
                reason: "\(count - 1) connections are already waiting for their handshake (maxUnauthenticatedConnections)",
                code: .handshakeFailed)
            return
        }
        if context.channel.isActive { armTimeout(context: context) }
    }

    /// This connection no longer counts as unauthenticated.
    private func uncount() {
        guard counted else { return }
        counted = false
        core.unauthenticated.wrappingSubtract(1, ordering: .relaxed)
    }

    func channelActive(context: ChannelHandlerContext) {
        if timeout == nil { armTimeout(context: context) }
        context.fireChannelActive()
    }

    private func armTimeout(context: ChannelHandlerContext) {
        let handshakeTimeout = TimeAmount(clamping: core.configuration.handshakeTimeout)
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) {
            self.close(context: context, reason: "handshake timed out", code: .handshakeFailed)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        accumulator.append(unwrapInboundIn(data))
        // Looked up once per read, not per frame: a read holds many small requests.
        var delegate: (any ClusterTransportDelegate)?
        do throws(FrameError) {
            while !closing {
                let limit = sink == nil ? core.handshakeMaxFrameSize : core.configuration.maxFrameSize
                guard let frame = try accumulator.next(maxFrameSize: limit) else { break }
                if let sink {
                    guard case .request(let request) = frame else {
                        close(
                            context: context, reason: "unexpected \(frame.type) frame on an inbound connection",
                            code: .protocolViolation)
                        return
                    }
                    if delegate == nil { delegate = core.delegate.current }
                    delegate?.transport(didReceive: request, sink: sink)
                } else {
                    handleHandshake(frame, context: context)
                }
            }
        } catch {
            close(context: context, reason: error.description, code: error.transportError.code)
        }
    }

    private func handleHandshake(_ frame: Frame, context: ChannelHandlerContext) {
        switch handshake.receive(frame) {
        case .send(let reply):
            write(reply, context: context)
        case .authenticated(let peerNodeID, let welcome):
            timeout?.cancel()
            timeout = nil
            uncount()
            logger[metadataKey: "peer.node"] = "\(peerNodeID)"
            let writer = InboundWriter(
                channel: context.channel, maxFrameSize: core.configuration.maxFrameSize, logger: logger)
            self.writer = writer
            sink = ResponseSink(writer: writer, peerNodeID: peerNodeID)
            write(welcome, context: context)
            logger.debug("peer authenticated")
        case .refuse(let refusal, let reason):
            logger.warning("handshake refused; closing", metadata: ["reason": "\(reason)"])
            closing = true
            timeout?.cancel()
            var buffer = context.channel.allocator.buffer(capacity: 128)
            FrameCodec.encode(refusal, into: &buffer)
            // Close only once the refusal is written, so the peer can log why.
            context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        case .close(let reason):
            close(context: context, reason: reason, code: .handshakeFailed)
        case .ignore:
            break
        }
    }

    private func write(_ frame: Frame, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 128)
        FrameCodec.encode(frame, into: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func close(context: ChannelHandlerContext, reason: String, code: TransportError.Code) {
        guard !closing else { return }
        closing = true
        core.metrics.inboundErrors.increment()
        uncount()
        timeout?.cancel()
        writer?.close()
        logger.warning("closing inbound connection", metadata: ["reason": "\(reason)", "error.code": "\(code)"])
        context.close(promise: nil)
    }

    /// `host:port` rather than NIO's `[IPv4]host/host:port`.
    private static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }

    func channelInactive(context: ChannelHandlerContext) {
        uncount()
        timeout?.cancel()
        writer?.close()
        if !closing { logger.debug("inbound connection closed by the peer") }
        closing = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context: context, reason: "\(error)", code: .unreachable)
    }
}
