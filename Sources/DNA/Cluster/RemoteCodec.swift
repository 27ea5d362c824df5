/// How one request type and its response cross the network: the `Codable` request in the
/// compact binary format (``CompactValue``), and the response the same way when its type
/// is `Codable` (`Void` is sent as nothing).
/// Built for every registered handler, so a node decodes only request types it registered.
@usableFromInline
struct RemoteCodec: Sendable {
    var encodeRequest: @Sendable (any AnyObject & Sendable) throws(DNAError) -> [UInt8]
    var decodeRequest: @Sendable ([UInt8]) throws(DNAError) -> any AnyObject & Sendable
    var encodeResponse: @Sendable (any Sendable) throws(DNAError) -> [UInt8]
    var decodeResponse: @Sendable ([UInt8]) throws(DNAError) -> any Sendable

    @usableFromInline
    init<R: ActorRequest>(for type: R.Type) {
        encodeRequest = { box throws(DNAError) in
            do {
                return try CompactEncoder.encode(unsafeDowncast(box, to: MessageBox<R>.self).value)
            } catch {
                throw DNAError(.encodingFailed, "\(R.requestName) could not be encoded: \(error)", underlying: error)
            }
        }
        decodeRequest = { bytes throws(DNAError) in
            do {
                return MessageBox(try CompactDecoder.decode(R.self, from: bytes))
            } catch {
                throw DNAError(.decodingFailed, "\(R.requestName) could not be decoded: \(error)", underlying: error)
            }
        }
        encodeResponse = { value throws(DNAError) in try Self.encode(value, as: R.Response.self) }
        decodeResponse = { bytes throws(DNAError) in try Self.decode(bytes, as: R.Response.self) }
    }

    private static func encode<Response>(_ value: any Sendable, as type: Response.Type) throws(DNAError) -> [UInt8] {
        if Response.self == Void.self { return [] }
        guard let encodable = Response.self as? any Encodable.Type else {
            throw DNAError(.encodingFailed, "the response type \(Response.self) is not Codable, so it cannot be sent to another node")
        }
        func encode<T: Encodable>(_: T.Type) throws -> [UInt8] { try CompactEncoder.encode(value as! T) }
        do { return try encode(encodable) } catch {
            throw DNAError(.encodingFailed, "a \(Response.self) response could not be encoded: \(error)", underlying: error)
        }
    }

    private static func decode<Response: Sendable>(_ bytes: [UInt8], as type: Response.Type) throws(DNAError) -> any Sendable {
        if Response.self == Void.self { return () as! Response }
        guard let decodable = Response.self as? any Decodable.Type else {
            throw DNAError(.decodingFailed, "the response type \(Response.self) is not Codable")
        }
        func decode<T: Decodable>(_: T.Type) throws -> Any { try CompactDecoder.decode(T.self, from: bytes) }
        do { return try decode(decodable) as! Response } catch {
            throw DNAError(.decodingFailed, "a \(Response.self) response could not be decoded: \(error)", underlying: error)
        }
    }
}
