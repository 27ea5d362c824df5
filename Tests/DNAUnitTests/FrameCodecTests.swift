import NIOCore
import Testing

@testable import DNATransport

@Suite("Frame codec")
struct FrameCodecTests {
    static let request = WireRequest(
        id: 0x0102_0304_0506_0708, expectsReply: true, hops: 3, namespace: "ns", kind: "bänk",
        key: "key-🔑", requestName: "Put", payload: [1, 2, 3, 0, 255])

    static let frames: [Frame] = [
        .request(request),
        .request(
            WireRequest(
                id: 5, expectsReply: true, hops: 1, namespace: "n", kind: "k", key: "k", requestName: "r", payload: [1],
                traceContext: "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")),
        .request(WireRequest(id: 0, expectsReply: false, hops: 0, namespace: "", kind: "", key: "", requestName: "", payload: [])),
        .response(WireResponse(id: 7, result: .success([9, 8, 7]))),
        .response(WireResponse(id: 8, result: .success([]))),
        .response(WireResponse(id: 9, result: .failure(WireError(code: "overloaded", message: "später", retryable: true)))),
        .response(WireResponse(id: 10, result: .failure(WireError(code: "x", message: "", retryable: false)))),
        .hello(Hello(magic: Hello.magic, protocolVersion: 1, cluster: "c", nodeID: "n1", nonce: Array(repeating: 7, count: 32))),
        .challenge(Challenge(nodeID: "n2", nonce: Array(repeating: 1, count: 32), serverProof: Array(repeating: 2, count: 32))),
        .proof(Proof(clientProof: Array(repeating: 3, count: 32))),
        .welcome,
        .refuse(Refuse(reason: "wrong cluster")),
    ]

    static func encoded(_ frame: Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        FrameCodec.encode(frame, into: &buffer)
        return buffer
    }

    /// A frame with the given type byte and raw body, length prefix included.
    static func raw(type: UInt8, body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(body.count + 1))
        buffer.writeInteger(type)
        buffer.writeBytes(body)
        return buffer
    }

    static func decodeError(_ buffer: ByteBuffer, max: Int = 1 << 20) -> FrameError? {
        var buffer = buffer
        do {
            _ = try FrameCodec.decode(from: &buffer, maxFrameSize: max)
            return nil
        } catch {
            return error
        }
    }

    @Test("every frame type round-trips", arguments: frames)
    func roundTrip(frame: Frame) throws {
        var buffer = Self.encoded(frame)
        let decoded = try FrameCodec.decode(from: &buffer, maxFrameSize: 1 << 20)
        #expect(decoded == frame)
        #expect(buffer.readableBytes == 0)
    }

    @Test("the precomputed frame length matches the encoding")
    func frameLengths() {
        for frame in Self.frames {
            let buffer = Self.encoded(frame)
            let prefix = Int(buffer.getInteger(at: 0, as: UInt32.self)!)
            #expect(prefix == buffer.readableBytes - 4)
            switch frame {
            case .request(let r): #expect(FrameCodec.frameLength(of: r) == prefix)
            case .response(let r): #expect(FrameCodec.frameLength(of: r) == prefix)
            default: break
            }
        }
    }

    @Test("a frame fed byte by byte decodes only when complete, and two frames in one buffer both decode")
    func partialAndConcatenated() throws {
        let bytes = Array(Self.encoded(.request(Self.request)).readableBytesView)
        var accumulator = FrameAccumulator()
        for (index, byte) in bytes.enumerated() {
            accumulator.append(ByteBuffer(bytes: [byte]))
            let frame = try accumulator.next(maxFrameSize: 1 << 20)
            if index < bytes.count - 1 {
                #expect(frame == nil)
            } else {
                #expect(frame == .request(Self.request))
            }
        }
        var two = Self.encoded(.welcome)
        var second = Self.encoded(.response(WireResponse(id: 1, result: .success([1]))))
        two.writeBuffer(&second)
        accumulator.append(two)
        #expect(try accumulator.next(maxFrameSize: 100) == .welcome)
        #expect(try accumulator.next(maxFrameSize: 100) == .response(WireResponse(id: 1, result: .success([1]))))
        #expect(try accumulator.next(maxFrameSize: 100) == nil)
        #expect(accumulator.bufferedBytes == 0)
    }

    @Test("a request's names that repeat the previous request's reuse its strings; any other bytes make new ones")
    func repeatedNamesAreReused() throws {
        func request(_ key: String, _ name: String = "Put", namespace: String = "ns") -> WireRequest {
            WireRequest(
                id: 1, expectsReply: false, hops: 0, namespace: namespace, kind: "kv", key: key, requestName: name, payload: [1])
        }
        // Same lengths, different bytes: a comparison of lengths alone would reuse wrongly.
        let sequence = [
            request("key-0000000000000001"), request("key-0000000000000001"), request("key-0000000000000002"),
            request("key-0000000000000002", "Get"), request("key-0000000000000002", "Get", namespace: "nt"),
            request("", "Get", namespace: ""), request("key-0000000000000002"),
        ]
        var accumulator = FrameAccumulator()
        var previous: WireRequest?
        for expected in sequence {
            accumulator.append(Self.encoded(.request(expected)))
            guard case .request(let decoded)? = try accumulator.next(maxFrameSize: 1 << 20) else {
                Issue.record("no request decoded")
                return
            }
            #expect(decoded == expected)
            if let previous, previous.key == expected.key {
                // Long enough to live in a heap buffer: reused means the same buffer.
                #expect(
                    decoded.key.utf8.withContiguousStorageIfAvailable { $0.baseAddress }
                        == previous.key.utf8.withContiguousStorageIfAvailable { $0.baseAddress })
            }
            previous = decoded
        }
        // A broken length after a reusable name still fails as broken.
        var broken = ByteBuffer()
        broken.writeInteger(UInt32(1 + 8 + 1 + 1 + 4))
        broken.writeInteger(UInt8(FrameType.request.rawValue))
        broken.writeInteger(UInt64(1))
        broken.writeInteger(UInt8(0))
        broken.writeInteger(UInt8(0))
        broken.writeInteger(UInt32(1000))  // namespace length past the end
        accumulator.append(broken)
        #expect(throws: FrameError.self) { try accumulator.next(maxFrameSize: 1 << 20) }
    }

    @Test("an oversized length prefix is refused from its 4 bytes alone, before any body arrives")
    func oversizedPrefix() {
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt32(1_000_001))
        #expect(Self.decodeError(prefix, max: 1_000_000) == .frameTooLarge(length: 1_000_001, max: 1_000_000))
        var huge = ByteBuffer()
        huge.writeInteger(UInt32.max)
        #expect(Self.decodeError(huge) == .frameTooLarge(length: Int(UInt32.max), max: 1 << 20))
        #expect(FrameError.frameTooLarge(length: 2, max: 1).transportError.code == .frameTooLarge)
        // Exactly the maximum is fine (needs more bytes, no error).
        var atMax = ByteBuffer()
        atMax.writeInteger(UInt32(1000))
        var copy = atMax
        #expect((try? FrameCodec.decode(from: &copy, maxFrameSize: 1000)) == .some(nil))
    }

    @Test("an incomplete length prefix needs more bytes")
    func shortPrefix() throws {
        var buffer = ByteBuffer(bytes: [0, 0, 1])
        #expect(try FrameCodec.decode(from: &buffer, maxFrameSize: 100) == nil)
        #expect(buffer.readableBytes == 3)
    }

    @Test("a zero length is refused")
    func emptyFrame() {
        #expect(Self.decodeError(ByteBuffer(bytes: [0, 0, 0, 0])) == .emptyFrame)
    }

    @Test("an unknown frame type is refused")
    func unknownType() {
        #expect(Self.decodeError(Self.raw(type: 0x7f, body: [1, 2])) == .unknownFrameType(0x7f))
        #expect(FrameError.unknownFrameType(0x7f).transportError.code == .protocolViolation)
    }

    /// Request bodies that break in each way a peer could break them.
    /// id 1, flags, hops 0, sequence 7, origin "o", then namespace, kind, key, request name
    /// (`strings`) and the payload.
    static func requestBody(
        flags: UInt8 = 1, strings: [[UInt8]] = [[110], [107], [107], [114]], payloadLength: UInt32? = nil,
        payload: [UInt8] = [1], trailing: [UInt8] = []
    ) -> [UInt8] {
        var body: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, flags, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 111]
        for string in strings {
            body += withUnsafeBytes(of: UInt32(string.count).bigEndian, Array.init) + string
        }
        body += withUnsafeBytes(of: (payloadLength ?? UInt32(payload.count)).bigEndian, Array.init) + payload
        return body + trailing
    }

    @Test("a well-formed hand-built request decodes (so the malformed cases below differ by one fault)")
    func handBuiltRequest() throws {
        var buffer = Self.raw(type: 0x10, body: Self.requestBody())
        let frame = try FrameCodec.decode(from: &buffer, maxFrameSize: 1000)
        #expect(
            frame
                == .request(
                    WireRequest(
                        id: 1, expectsReply: true, hops: 0, namespace: "n", kind: "k", key: "k", requestName: "r",
                        payload: [1], origin: "o", sequence: 7)))
    }

    @Test("malformed request bodies are refused with the broken field named")
    func malformedRequests() {
        func error(_ body: [UInt8]) -> String? {
            Self.decodeError(Self.raw(type: 0x10, body: body)).map(\.description)
        }
        #expect(error([0, 0, 0]) == "malformed request frame: truncated id")
        #expect(error(Array(Self.requestBody().prefix(14)))?.contains("sequence") == true)
        #expect(error(Array(Self.requestBody().prefix(25)))?.contains("namespace length") == true)
        // A string length past the end of the frame.
        var body = Self.requestBody()
        body[26] = 200
        #expect(error(body)?.contains("namespace length 200 runs past the end") == true)
        #expect(error(Self.requestBody(payloadLength: 1000))?.contains("payload length 1000 runs past the end") == true)
        #expect(error(Self.requestBody(payloadLength: UInt32.max))?.contains("payload length") == true)
        #expect(error(Self.requestBody(trailing: [0]))?.contains("1 trailing bytes") == true)
        #expect(error(Self.requestBody(strings: [[0xff, 0xfe], [107], [107], [114]]))?.contains("not valid UTF-8") == true)
        #expect(error(Self.requestBody(flags: 0x80))?.contains("unknown flags") == true)
        #expect(error(Array(Self.requestBody().dropLast(1)))?.contains("payload length 1 runs past") == true)
        // Flag 0x02 says a trace context follows the payload: missing, empty or too long is malformed.
        #expect(error(Self.requestBody(flags: 0x03))?.contains("traceContext") == true)
        #expect(error(Self.requestBody(flags: 0x03, trailing: [0, 0, 0, 0]))?.contains("a trace context of 0 bytes") == true)
        let long = [UInt8](repeating: 97, count: WireRequest.maxTraceContextSize + 1)
        let lengthBytes = withUnsafeBytes(of: UInt32(long.count).bigEndian) { Array($0) }
        #expect(error(Self.requestBody(flags: 0x03, trailing: lengthBytes + long))?.contains("a trace context of 4097 bytes") == true)
    }

    @Test("malformed response and handshake bodies are refused")
    func malformedOthers() {
        #expect(Self.decodeError(Self.raw(type: 0x11, body: [0, 0, 0, 0, 0, 0, 0, 1, 5])) == .malformed(.response, "unknown status 5"))
        var failure: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, 1]
        failure += [0, 0, 0, 1, 120, 0, 0, 0, 0, 2]
        #expect(Self.decodeError(Self.raw(type: 0x11, body: failure)) == .malformed(.response, "retryable must be 0 or 1"))
        #expect(Self.decodeError(Self.raw(type: 0x11, body: [0, 0])) == .malformed(.response, "truncated id"))
        #expect(Self.decodeError(Self.raw(type: 0x01, body: [68, 78, 65])) == .malformed(.hello, "truncated magic"))
        let helloShortNonce: [UInt8] = [68, 78, 65, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 31)
        #expect(Self.decodeError(Self.raw(type: 0x01, body: helloShortNonce)) == .malformed(.hello, "truncated nonce"))
        #expect(Self.decodeError(Self.raw(type: 0x04, body: [1])) == .malformed(.welcome, "1 trailing bytes"))
        #expect(Self.decodeError(Self.raw(type: 0x05, body: [0, 0, 0, 9, 65])) != nil)
    }

    @Test("a failed decode consumes nothing")
    func failedDecodeConsumesNothing() {
        var buffer = Self.raw(type: 0x10, body: [0, 0, 0])
        let before = buffer.readerIndex
        #expect(throws: FrameError.self) { try FrameCodec.decode(from: &buffer, maxFrameSize: 100) }
        #expect(buffer.readerIndex == before)
    }
}

@Suite("Peer addresses")
struct PeerAddressTests {
    @Test func parsesHostAndPort() throws {
        #expect(try PeerAddress(parsing: "127.0.0.1:7000") == PeerAddress(host: "127.0.0.1", port: 7000))
        #expect(try PeerAddress(parsing: "node-1.example:1") == PeerAddress(host: "node-1.example", port: 1))
        #expect(try PeerAddress(parsing: "[::1]:65535") == PeerAddress(host: "::1", port: 65535))
        #expect(PeerAddress(host: "h", port: 2).description == "h:2")
    }

    @Test(
        "malformed addresses are refused",
        arguments: [
            "", "host", ":80", "host:", "host:0", "host:65536", "host:-1", "::1:80", "[::1]", "[::1]80", "host:8x", "ho st:80", "host:+80",
        ])
    func refusesMalformed(text: String) {
        #expect(throws: TransportError.self) { try PeerAddress(parsing: text) }
        do {
            _ = try PeerAddress(parsing: text)
        } catch {
            #expect(error.code == .invalidAddress)
        }
    }
}
