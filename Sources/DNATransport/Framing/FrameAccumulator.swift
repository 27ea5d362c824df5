import NIOCore

/// Collects a connection's inbound bytes and cuts them into frames with ``FrameCodec``.
///
/// Owned by one channel handler, used on its event loop only.
struct FrameAccumulator {
    private var buffer: ByteBuffer?
    private var recentNames = RecentNames()

    mutating func append(_ bytes: ByteBuffer) {
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = bytes  // the common case: no partial frame left over, no copy
        } else {
            var incoming = bytes
            buffer!.writeBuffer(&incoming)
        }
    }

    /// The next complete frame, or `nil` if more bytes are needed.
    mutating func next(maxFrameSize: Int) throws(FrameError) -> Frame? {
        guard buffer != nil else { return nil }
        let frame = try FrameCodec.decode(from: &buffer!, maxFrameSize: maxFrameSize, names: &recentNames)
        if frame == nil {
            // Waiting for the rest of a frame: drop the consumed prefix so a long stream of
            // frames does not grow the buffer without bound.
            buffer!.discardReadBytes()
        }
        return frame
    }

    /// Bytes received but not yet part of a complete frame.
    var bufferedBytes: Int { buffer?.readableBytes ?? 0 }
}
