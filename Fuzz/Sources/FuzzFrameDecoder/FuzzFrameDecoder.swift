// Fuzzes the node-to-node frame decoder (`FrameAccumulator`, `FrameCodec.decode`) with
// arbitrary bytes, as a peer that is not (yet) authenticated could send them.
//
// Input: byte 0 chooses the maximum frame size and how the rest is cut into appends;
// the rest is the byte stream. Checked, besides "never traps":
// - cutting the stream into appends changes nothing: the accumulator (which reuses the
//   previous request's names) yields the same frames and the same error as decoding the
//   whole stream at once with fresh names;
// - every decoded frame re-encodes (`FrameCodec.encode`) to exactly the bytes it was
//   read from, `frameLength(of:)` agrees, and the encoding decodes to an equal frame.

@testable import DNATransport
import FuzzSupport
import NIOCore

private let maxFrameSizes = [0, 1, 16, 64, 1024, 1 << 20, 16 << 20, Int(UInt32.max), Int.max]

/// How the stream is cut into appends, from the control byte's high bits.
private func chunkSizes(control: UInt8, stream: ArraySlice<UInt8>) -> [Int] {
    let mode = control >> 4
    switch mode {
    case 0: return [stream.count]  // one append
    case 1:
        // Byte by byte, then the rest at once (an append per byte of a 4 KiB input costs
        // milliseconds, for nothing the first bytes do not show).
        let single = min(stream.count, 256)
        return Array(repeating: 1, count: single) + (stream.count > single ? [stream.count - single] : [])
    default:
        // Sizes taken from the stream itself (a pseudo-random but reproducible cut).
        var sizes: [Int] = []
        var left = stream.count
        var index = stream.startIndex
        while left > 0 {
            let size = min(left, 1 + Int(stream[index] &+ mode) % (Int(mode) * 4))
            sizes.append(size)
            left -= size
            index += size
        }
        return sizes
    }
}

private enum Outcome: Equatable {
    case needMoreBytes
    case failed(FrameError)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let control = input.first else { return 0 }
    let stream = input.dropFirst()
    let maxFrameSize = maxFrameSizes[Int(control & 0x0f) % maxFrameSizes.count]

    // The reference: the whole stream in one buffer, fresh names for every frame.
    var whole = ByteBuffer(bytes: stream)
    var reference: [(frame: Frame, bytes: ArraySlice<UInt8>)] = []
    var referenceOutcome = Outcome.needMoreBytes
    while true {
        let before = whole.readerIndex
        do {
            guard let frame = try FrameCodec.decode(from: &whole, maxFrameSize: maxFrameSize) else { break }
            let consumed = whole.readerIndex - before
            precondition(consumed >= FrameCodec.lengthPrefixSize + 1, "a frame consumed \(consumed) bytes")
            reference.append((frame, stream.dropFirst(before).prefix(consumed)))
        } catch {
            precondition(whole.readerIndex == before, "a failed decode consumed bytes")
            referenceOutcome = .failed(error)
            break
        }
    }

    // The accumulator, fed in pieces, pulling frames after each.
    var accumulator = FrameAccumulator()
    var frames: [Frame] = []
    var outcome = Outcome.needMoreBytes
    var offset = stream.startIndex
    feeding: for size in chunkSizes(control: control, stream: stream) {
        accumulator.append(ByteBuffer(bytes: stream[offset..<offset + size]))
        offset += size
        while true {
            do {
                guard let frame = try accumulator.next(maxFrameSize: maxFrameSize) else { break }
                frames.append(frame)
            } catch {
                outcome = .failed(error)
                break feeding
            }
        }
    }
    if case .needMoreBytes = outcome {
        precondition(
            accumulator.bufferedBytes == stream.count - reference.reduce(0) { $0 + $1.bytes.count },
            "the accumulator holds \(accumulator.bufferedBytes) bytes")
    }

    precondition(frames.count == reference.count, "\(frames.count) frames in pieces, \(reference.count) whole")
    precondition(outcome == referenceOutcome, "in pieces: \(outcome), whole: \(referenceOutcome)")

    for (frame, (referenceFrame, bytes)) in zip(frames, reference) {
        precondition(frame == referenceFrame, "in pieces: \(frame), whole: \(referenceFrame)")
        checkRoundTrip(frame, bytes: bytes, maxFrameSize: maxFrameSize)
    }
    return 0
}

private func checkRoundTrip(_ frame: Frame, bytes: ArraySlice<UInt8>, maxFrameSize: Int) {
    var encoded = ByteBuffer()
    FrameCodec.encode(frame, into: &encoded)
    switch frame {
    case .request(let request):
        precondition(FrameCodec.frameLength(of: request) + FrameCodec.lengthPrefixSize == encoded.readableBytes)
        var direct = ByteBuffer()
        FrameCodec.encode(request, into: &direct)
        precondition(direct == encoded, "encode(WireRequest) and encode(Frame) differ")
    case .response(let response):
        precondition(FrameCodec.frameLength(of: response) + FrameCodec.lengthPrefixSize == encoded.readableBytes)
        var direct = ByteBuffer()
        FrameCodec.encode(response, into: &direct)
        precondition(direct == encoded, "encode(WireResponse) and encode(Frame) differ")
    default:
        break
    }
    // Every field has one encoding, so the frame re-encodes to the very bytes it came from
    // (this also tells strings apart that `==` finds canonically equivalent).
    precondition(
        encoded.readableBytesView.elementsEqual(bytes),
        "\(frame) re-encodes to \(Array(encoded.readableBytesView)), read from \(Array(bytes))")
    do {
        let decoded = try FrameCodec.decode(from: &encoded, maxFrameSize: maxFrameSize)
        precondition(decoded == frame, "\(frame) decodes back as \(String(describing: decoded))")
        precondition(encoded.readableBytes == 0, "\(encoded.readableBytes) bytes left after the re-encoded frame")
    } catch {
        preconditionFailure("\(frame) re-encoded does not decode: \(error)")
    }
}

// MARK: Seeds

/// One frame of each kind (and a stream of requests that repeat their names), encoded by
/// the real encoder; `DNA_FUZZ_WRITE_SEEDS=folder` writes them (see `writeSeedsIfAsked`).
func sampleFrames() -> [(name: String, frames: [Frame])] {
    let nonce = [UInt8](repeating: 7, count: HandshakeNonce.size)
    let request = WireRequest(
        id: 42, expectsReply: true, hops: 1, namespace: "default", kind: "kv", key: "user/1", requestName: "Put",
        payload: [8, 2, 3, 107, 101, 121, 7, 1, 118], origin: "node-a", sequence: 9)
    var second = request
    second.id = 43
    second.key = "user/2"
    second.expectsReply = false
    second.sequence = 10
    return [
        (
            "hello",
            [.hello(Hello(magic: Hello.magic, protocolVersion: Hello.currentProtocolVersion, cluster: "c", nodeID: "n1", nonce: nonce))]
        ),
        ("challenge", [.challenge(Challenge(nodeID: "n2", nonce: nonce, serverProof: [UInt8](repeating: 1, count: 32)))]),
        ("proof", [.proof(Proof(clientProof: [UInt8](repeating: 2, count: 32)))]),
        ("welcome", [.welcome]),
        ("refuse", [.refuse(Refuse(reason: "wrong cluster"))]),
        ("request", [.request(request)]),
        ("requests", [.request(request), .request(second), .request(request)]),
        ("response-success", [.response(WireResponse(id: 42, result: .success([0])))]),
        (
            "response-failure",
            [.response(WireResponse(id: 43, result: .failure(WireError(code: "unavailable", message: "später", retryable: true))))]
        ),
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
    writeSeedsIfAsked {
        sampleFrames().flatMap { sample -> [(name: String, bytes: [UInt8])] in
            var buffer = ByteBuffer()
            for frame in sample.frames { FrameCodec.encode(frame, into: &buffer) }
            let bytes = Array(buffer.readableBytesView)
            // Control byte: maxFrameSize 1 MiB, one append; and 4 GiB, cut in pieces.
            return [("\(sample.name)-whole", [0x05] + bytes), ("\(sample.name)-pieces", [0x37] + bytes)]
        }
    }
    return 0
}
