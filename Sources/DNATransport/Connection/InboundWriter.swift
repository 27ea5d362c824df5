import Logging
import NIOCore
import Synchronization

/// Writes responses back on an inbound (peer-initiated) connection, from any thread.
///
/// Responses are encoded straight into a pending buffer under a lock; the first one after a
/// flush schedules the next flush on the channel's event loop, so a burst of responses in
/// one tick becomes one write and one syscall.
final class InboundWriter: Sendable {
    private struct State {
        var pending: ByteBuffer?
        var flushScheduled = false
        var closed = false
    }

    private let channel: any Channel
    private let maxFrameSize: Int
    private let logger: Logger
    private let state = Mutex(State())

    init(channel: any Channel, maxFrameSize: Int, logger: Logger) {
        self.channel = channel
        self.maxFrameSize = maxFrameSize
        self.logger = logger
    }

    func send(_ response: WireResponse) {
        var response = response
        let length = FrameCodec.frameLength(of: response)
        if length > maxFrameSize {
            // One oversized response must not break the connection for every other one:
            // tell the caller instead.
            logger.warning(
                "response too large; sending payloadTooLarge instead",
                metadata: ["request.id": "\(response.id)", "frame.size": "\(length)", "frame.max": "\(maxFrameSize)"])
            response = WireResponse(id: response.id, result: .failure(.payloadTooLarge(size: length, max: maxFrameSize)))
        }
        let scheduleFlush = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            if state.pending == nil { state.pending = channel.allocator.buffer(capacity: 256) }
            FrameCodec.encode(response, into: &state.pending!)
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if scheduleFlush {
            channel.eventLoop.execute { self.flush() }
        }
    }

    private func flush() {
        let pending = state.withLock { state -> ByteBuffer? in
            state.flushScheduled = false
            defer { state.pending = nil }
            return state.pending
        }
        if let pending, pending.readableBytes > 0 {
            channel.writeAndFlush(pending, promise: nil)
        }
    }

    /// Drops what is pending and everything sent later.
    func close() {
        state.withLock {
            $0.closed = true
            $0.pending = nil
        }
    }
}

extension WireError {
    /// The synthetic error for a request or response over ``TransportConfiguration/maxFrameSize``.
    static func payloadTooLarge(size: Int, max: Int) -> WireError {
        WireError(
            code: "payloadTooLarge", message: "frame of \(size) bytes exceeds the maximum frame size of \(max) bytes",
            retryable: false)
    }
}
