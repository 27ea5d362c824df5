import Metrics
import NIOCore

/// The transport's metrics (swift-metrics; no-ops until a backend is bootstrapped before
/// the transport is made).
struct LinkMetrics: Sendable {
    /// Bytes on the wire (TLS included), by direction.
    let bytesSent = Counter(label: "dna_link_bytes_total", dimensions: [("direction", "sent")])
    let bytesReceived = Counter(label: "dna_link_bytes_total", dimensions: [("direction", "received")])
    /// Inbound connections closed for a fault (handshake failed or timed out, a malformed
    /// or unexpected frame, too many unauthenticated connections).
    let inboundErrors = Counter(label: "dna_link_errors_total", dimensions: [("direction", "inbound")])
}

/// First in every connection's pipeline: counts the bytes read and written.
final class LinkByteCounter: ChannelDuplexHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let metrics: LinkMetrics

    init(_ metrics: LinkMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        metrics.bytesReceived.increment(by: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        metrics.bytesSent.increment(by: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}
