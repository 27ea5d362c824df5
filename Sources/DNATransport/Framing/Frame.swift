import NIOCore

/// The type byte that follows a frame's length prefix.
///
/// Values are part of the wire protocol (version 1): never renumber them.
enum FrameType: UInt8, Sendable, CaseIterable {
    case hello = 0x01
    case challenge = 0x02
    case proof = 0x03
    case welcome = 0x04
    case refuse = 0x05
    case request = 0x10
    case response = 0x11
}

/// One decoded frame: a handshake message or, once authenticated, a request or response.
enum Frame: Sendable, Equatable {
    case hello(Hello)
    case challenge(Challenge)
    case proof(Proof)
    case welcome
    case refuse(Refuse)
    case request(WireRequest)
    case response(WireResponse)

    var type: FrameType {
        switch self {
        case .hello: .hello
        case .challenge: .challenge
        case .proof: .proof
        case .welcome: .welcome
        case .refuse: .refuse
        case .request: .request
        case .response: .response
        }
    }
}

/// Why bytes could not be read as a frame. Every case closes the connection.
enum FrameError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The length prefix announces more than the allowed maximum (checked before buffering).
    case frameTooLarge(length: Int, max: Int)
    /// A length prefix of 0: there is not even a type byte.
    case emptyFrame
    case unknownFrameType(UInt8)
    /// The body does not parse as its type says (`what` names the field).
    case malformed(FrameType, String)

    var description: String {
        switch self {
        case .frameTooLarge(let length, let max): "frame of \(length) bytes exceeds the maximum of \(max)"
        case .emptyFrame: "empty frame (length 0)"
        case .unknownFrameType(let t): "unknown frame type 0x\(String(t, radix: 16))"
        case .malformed(let type, let what): "malformed \(type) frame: \(what)"
        }
    }

    /// The transport error code this maps to (for logs and `linkFailed`).
    var transportError: TransportError {
        switch self {
        case .frameTooLarge: TransportError(.frameTooLarge, description)
        default: TransportError(.protocolViolation, description)
        }
    }
}

/// The frame codec: `UInt32` big-endian length (of type byte + body), a 1-byte type, the
/// body. Integers are big-endian; strings are a `UInt32` length and UTF-8 bytes; byte
/// arrays a `UInt32` length and the bytes.
enum FrameCodec {
    /// Bytes before a frame's type byte.
    static let lengthPrefixSize = 4

    // MARK: Decoding

    /// Reads the next complete frame from `buffer`, or returns `nil` (consuming nothing) if
    /// more bytes are needed. The length prefix is checked against `maxFrameSize` as soon
    /// as its 4 bytes are there, so an oversized frame is refused before its body is
    /// buffered.
    static func decode(from buffer: inout ByteBuffer, maxFrameSize: Int) throws(FrameError) -> Frame? {
        var names = RecentNames()
        return try decode(from: &buffer, maxFrameSize: maxFrameSize, names: &names)
    }

    /// As ``decode(from:maxFrameSize:)``; a request's names that repeat those of the
    /// previous request in `names` reuse its strings instead of making new ones.
    static func decode(
        from buffer: inout ByteBuffer, maxFrameSize: Int, names: inout RecentNames
    ) throws(FrameError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let frameLength = Int(length)
        guard frameLength <= maxFrameSize else {
            throw .frameTooLarge(length: frameLength, max: maxFrameSize)
        }
        guard frameLength >= 1 else { throw .emptyFrame }
        guard buffer.readableBytes >= lengthPrefixSize + frameLength else { return nil }
        let typeByte = buffer.getInteger(at: buffer.readerIndex + lengthPrefixSize, as: UInt8.self)!
        guard let type = FrameType(rawValue: typeByte) else { throw .unknownFrameType(typeByte) }
        var body = buffer.getSlice(at: buffer.readerIndex + lengthPrefixSize + 1, length: frameLength - 1)!
        let frame = try decodeBody(type, &body, names: &names)
        guard body.readableBytes == 0 else {
            throw .malformed(type, "\(body.readableBytes) trailing bytes")
        }
        buffer.moveReaderIndex(forwardBy: lengthPrefixSize + frameLength)
        return frame
    }

    private static func decodeBody(
        _ type: FrameType, _ body: inout ByteBuffer, names: inout RecentNames
    ) throws(FrameError) -> Frame {
        var reader = BodyReader(type: type, buffer: body)
        defer { body = reader.buffer }
        switch type {
        case .hello:
            let magic = try reader.bytes(count: Hello.magic.count, "magic")
            let version = try reader.integer(UInt16.self, "protocolVersion")
            let cluster = try reader.string("cluster")
            let nodeID = try reader.string("nodeID")
            let nonce = try reader.bytes(count: HandshakeNonce.size, "nonce")
            return .hello(Hello(magic: magic, protocolVersion: version, cluster: cluster, nodeID: nodeID, nonce: nonce))
        case .challenge:
            let nodeID = try reader.string("nodeID")
            let nonce = try reader.bytes(count: HandshakeNonce.size, "nonce")
            let proof = try reader.lengthPrefixedBytes("serverProof")
            return .challenge(Challenge(nodeID: nodeID, nonce: nonce, serverProof: proof))
        case .proof:
            return .proof(Proof(clientProof: try reader.lengthPrefixedBytes("clientProof")))
        case .welcome:
            return .welcome
        case .refuse:
            return .refuse(Refuse(reason: try reader.string("reason")))
        case .request:
            let id = try reader.integer(UInt64.self, "id")
            let flags = try reader.integer(UInt8.self, "flags")
            guard flags & ~RequestFlags.known == 0 else {
                throw .malformed(type, "unknown flags 0x\(String(flags, radix: 16))")
            }
            let hops = try reader.integer(UInt8.self, "hops")
            let sequence = try reader.integer(UInt64.self, "sequence")
            let origin = try reader.string("origin", reusing: &names.origin)
            let namespace = try reader.string("namespace", reusing: &names.namespace)
            let kind = try reader.string("kind", reusing: &names.kind)
            let key = try reader.string("key", reusing: &names.key)
            let requestName = try reader.string("requestName", reusing: &names.requestName)
            let payload = try reader.lengthPrefixedBytes("payload")
            var traceContext = ""
            if flags & RequestFlags.traceContext != 0 {
                traceContext = try reader.string("traceContext")
                guard !traceContext.isEmpty, traceContext.utf8.count <= WireRequest.maxTraceContextSize else {
                    throw .malformed(type, "a trace context of \(traceContext.utf8.count) bytes (1 to \(WireRequest.maxTraceContextSize))")
                }
            }
            return .request(
                WireRequest(
                    id: id, expectsReply: flags & RequestFlags.expectsReply != 0, hops: hops,
                    namespace: namespace, kind: kind, key: key, requestName: requestName, payload: payload,
                    origin: origin, sequence: sequence, traceContext: traceContext))
        case .response:
            let id = try reader.integer(UInt64.self, "id")
            let status = try reader.integer(UInt8.self, "status")
            switch status {
            case ResponseStatus.success:
                return .response(WireResponse(id: id, result: .success(try reader.lengthPrefixedBytes("payload"))))
            case ResponseStatus.failure:
                let code = try reader.string("error code")
                let message = try reader.string("error message")
                let retryable = try reader.integer(UInt8.self, "retryable")
                guard retryable <= 1 else { throw .malformed(type, "retryable must be 0 or 1") }
                return .response(
                    WireResponse(id: id, result: .failure(WireError(code: code, message: message, retryable: retryable == 1))))
            default:
                throw .malformed(type, "unknown status \(status)")
            }
        }
    }

    // MARK: Encoding

    /// The value of a request frame's length prefix (type byte + body), computed without
    /// encoding so an oversized request is refused before any bytes are written.
    static func frameLength(of request: WireRequest) -> Int {
        1 + 8 + 1 + 1 + 8
            + 4 + request.origin.utf8.count
            + 4 + request.namespace.utf8.count
            + 4 + request.kind.utf8.count
            + 4 + request.key.utf8.count
            + 4 + request.requestName.utf8.count
            + 4 + request.payload.count
            + (request.traceContext.isEmpty ? 0 : 4 + request.traceContext.utf8.count)
    }

    /// The value of a response frame's length prefix.
    static func frameLength(of response: WireResponse) -> Int {
        switch response.result {
        case .success(let payload): 1 + 8 + 1 + 4 + payload.count
        case .failure(let error): 1 + 8 + 1 + 4 + error.code.utf8.count + 4 + error.message.utf8.count + 1
        }
    }

    /// Appends `frame` to `buffer`.
    static func encode(_ frame: Frame, into buffer: inout ByteBuffer) {
        switch frame {
        case .request(let request): encode(request, into: &buffer)
        case .response(let response): encode(response, into: &buffer)
        default:
            let start = buffer.writerIndex
            buffer.writeInteger(UInt32(0))  // patched below: handshake frames are small and rare
            buffer.writeInteger(frame.type.rawValue)
            switch frame {
            case .hello(let hello):
                buffer.writeBytes(hello.magic)
                buffer.writeInteger(hello.protocolVersion)
                writeString(hello.cluster, into: &buffer)
                writeString(hello.nodeID, into: &buffer)
                buffer.writeBytes(hello.nonce)
            case .challenge(let challenge):
                writeString(challenge.nodeID, into: &buffer)
                buffer.writeBytes(challenge.nonce)
                writeBytes(challenge.serverProof, into: &buffer)
            case .proof(let proof):
                writeBytes(proof.clientProof, into: &buffer)
            case .welcome:
                break
            case .refuse(let refuse):
                writeString(refuse.reason, into: &buffer)
            case .request, .response:
                preconditionFailure("handled above")
            }
            buffer.setInteger(UInt32(buffer.writerIndex - start - lengthPrefixSize), at: start)
        }
    }

    /// Appends a request frame to `buffer` (the hot path: no intermediate `Frame`).
    ///
    /// Writes through one raw pointer: a `ByteBuffer` write per field costs a capacity and
    /// an exclusivity check each, a third of the encoding time for small requests.
    static func encode(_ request: WireRequest, into buffer: inout ByteBuffer) {
        let length = frameLength(of: request)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: lengthPrefixSize + length) { raw in
            var writer = RawFrameWriter(raw.baseAddress!)
            writer.integer(UInt32(length))
            writer.integer(FrameType.request.rawValue)
            writer.integer(request.id)
            writer.integer(
                (request.expectsReply ? RequestFlags.expectsReply : 0) | (request.traceContext.isEmpty ? 0 : RequestFlags.traceContext))
            writer.integer(request.hops)
            writer.integer(request.sequence)
            writer.string(request.origin)
            writer.string(request.namespace)
            writer.string(request.kind)
            writer.string(request.key)
            writer.string(request.requestName)
            writer.bytes(request.payload)
            if !request.traceContext.isEmpty { writer.string(request.traceContext) }
            assert(writer.written == lengthPrefixSize + length, "frameLength(of:) disagrees with the encoding")
            return writer.written
        }
    }

    /// Appends a response frame to `buffer`.
    static func encode(_ response: WireResponse, into buffer: inout ByteBuffer) {
        let length = frameLength(of: response)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: lengthPrefixSize + length) { raw in
            var writer = RawFrameWriter(raw.baseAddress!)
            writer.integer(UInt32(length))
            writer.integer(FrameType.response.rawValue)
            writer.integer(response.id)
            switch response.result {
            case .success(let payload):
                writer.integer(ResponseStatus.success)
                writer.bytes(payload)
            case .failure(let error):
                writer.integer(ResponseStatus.failure)
                writer.string(error.code)
                writer.string(error.message)
                writer.integer(error.retryable ? UInt8(1) : 0)
            }
            assert(writer.written == lengthPrefixSize + length, "frameLength(of:) disagrees with the encoding")
            return writer.written
        }
    }

    private static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(string.utf8.count))
        buffer.writeString(string)
    }

    private static func writeBytes(_ bytes: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
    }
}

/// Writes big-endian integers, strings and byte arrays at a raw pointer; the caller has
/// reserved the room (the frame's precomputed length).
private struct RawFrameWriter {
    private let start: UnsafeMutableRawPointer
    private var cursor: UnsafeMutableRawPointer

    init(_ start: UnsafeMutableRawPointer) {
        self.start = start
        self.cursor = start
    }

    var written: Int { cursor - start }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        cursor.storeBytes(of: value.bigEndian, as: T.self)  // unaligned stores are fine (SE-0349)
        cursor += MemoryLayout<T>.size
    }

    mutating func string(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            integer(UInt32(utf8.count))
            if let base = utf8.baseAddress { cursor.copyMemory(from: base, byteCount: utf8.count) }
            cursor += utf8.count
        }
    }

    mutating func bytes(_ bytes: [UInt8]) {
        integer(UInt32(bytes.count))
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { cursor.copyMemory(from: base, byteCount: raw.count) }
        }
        cursor += bytes.count
    }
}

/// The names of the last request read on a connection. A stream of requests nearly
/// always repeats them (one actor, one request type): comparing bytes is cheaper than
/// making and validating new strings, and equal strings that share storage compare at once
/// further on.
struct RecentNames {
    var origin: String?
    var namespace: String?
    var kind: String?
    var key: String?
    var requestName: String?
}

/// Bits of a request frame's flags byte.
enum RequestFlags {
    static let expectsReply: UInt8 = 0x01
    /// A trace context follows the payload (a length-prefixed string).
    static let traceContext: UInt8 = 0x02
    static let known: UInt8 = expectsReply | traceContext
}

/// A response frame's status byte.
enum ResponseStatus {
    static let success: UInt8 = 0
    static let failure: UInt8 = 1
}

/// Reads a frame body field by field, naming the field that is missing or broken.
///
/// Field names are `StaticString`s so that nothing is formatted unless a frame is broken
/// (this runs for every field of every request).
private struct BodyReader {
    let type: FrameType
    var buffer: ByteBuffer

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ field: StaticString) throws(FrameError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw .malformed(type, "truncated \(field)") }
        return value
    }

    mutating func bytes(count: Int, _ field: StaticString) throws(FrameError) -> [UInt8] {
        guard let bytes = buffer.readBytes(length: count) else { throw .malformed(type, "truncated \(field)") }
        return bytes
    }

    /// A `UInt32` length that must fit in what is left of the frame.
    private mutating func length(_ field: StaticString) throws(FrameError) -> Int {
        guard let length = buffer.readInteger(as: UInt32.self) else {
            throw .malformed(type, "truncated \(field) length")
        }
        guard Int(length) <= buffer.readableBytes else {
            throw .malformed(type, "\(field) length \(length) runs past the end of the frame")
        }
        return Int(length)
    }

    mutating func lengthPrefixedBytes(_ field: StaticString) throws(FrameError) -> [UInt8] {
        let length = try length(field)
        return buffer.readBytes(length: length)!
    }

    /// A string field; `recent` if its bytes are the same, else a new string that
    /// replaces `recent`.
    mutating func string(_ field: StaticString, reusing recent: inout String?) throws(FrameError) -> String {
        if let previous = recent, let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init),
            length <= buffer.readableBytes - 4
        {
            let same = buffer.withUnsafeReadableBytes { bytes in
                previous.hasUTF8(UnsafeRawBufferPointer(rebasing: bytes[4..<4 + length]))
            }
            if same {
                buffer.moveReaderIndex(forwardBy: 4 + length)
                return previous
            }
        }
        // Anything else, a broken length included, takes the checked path.
        let string = try string(field)
        recent = string
        return string
    }

    mutating func string(_ field: StaticString) throws(FrameError) -> String {
        let length = try length(field)
        let string = buffer.withUnsafeReadableBytes { bytes in
            String(validatingUTF8Bytes: UnsafeRawBufferPointer(rebasing: bytes[..<length]))
        }
        guard let string else { throw .malformed(type, "\(field) is not valid UTF-8") }
        buffer.moveReaderIndex(forwardBy: length)
        return string
    }
}
