/// Encodes `Encodable` values in the compact binary format (see ``CompactValue``).
enum CompactEncoder {
    /// Encodes `value`. Most values are written as they encode (``CompactStreamingWriter``);
    /// one that uses its containers in a way that cannot be streamed is encoded a second
    /// time through a tree, so its `encode(to:)` may run twice.
    static func encode<T: Encodable>(_ value: T) throws(EncodingError) -> [UInt8] {
        if CompactValue(primitive: value) == nil {
            let writer = CompactStreamingWriter()
            let encoder = CompactStreamingEncoder(writer: writer, codingPath: [])
            do {
                try value.encode(to: encoder)
                // A top-level value that wrote nothing is an error, which the tree reports.
                writer.finish()
                if writer.succeeded && encoder.wroteValue { return writer.bytes }
            } catch {
                // Encoded again below, which throws the error with its coding path.
            }
        }
        return try encodeThroughTree(value)
    }

    /// Builds the value's tree, then writes it: handles every way of using containers. The
    /// fast path above writes the same bytes.
    static func encodeThroughTree<T: Encodable>(_ value: T) throws(EncodingError) -> [UInt8] {
        let root: CompactValue
        if let primitive = CompactValue(primitive: value) {
            root = primitive
        } else {
            let encoder = CompactEncoderImplementation(codingPath: [])
            do { try value.encode(to: encoder) } catch let error as EncodingError { throw error } catch {
                throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(error)", underlyingError: error))
            }
            guard let encoded = encoder.value else {
                throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(T.self) encoded no value"))
            }
            root = encoded
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        root.write(into: &bytes)
        return bytes
    }
}

extension CompactValue {
    /// The value of a type the format holds directly; `nil` for anything else.
    init?<T: Encodable>(primitive value: T) {
        // Metatype comparisons are pointer compares; the cast runs only on a match.
        if T.self == String.self {
            self = .string(value as! String)
        } else if T.self == Int.self {
            self = .int(Int64(value as! Int))
        } else if T.self == Bool.self {
            self = .bool(value as! Bool)
        } else if T.self == Double.self {
            self = .double(value as! Double)
        } else if T.self == UInt64.self {
            self = .uint(value as! UInt64)
        } else if T.self == Int64.self {
            self = .int(value as! Int64)
        } else if T.self == UInt.self {
            self = .uint(UInt64(value as! UInt))
        } else if T.self == Float.self {
            self = .float(value as! Float)
        } else if T.self == Int32.self {
            self = .int(Int64(value as! Int32))
        } else if T.self == UInt32.self {
            self = .uint(UInt64(value as! UInt32))
        } else if T.self == UInt8.self {
            self = .uint(UInt64(value as! UInt8))
        } else if T.self == Int16.self {
            self = .int(Int64(value as! Int16))
        } else if T.self == UInt16.self {
            self = .uint(UInt64(value as! UInt16))
        } else if T.self == Int8.self {
            self = .int(Int64(value as! Int8))
        } else {
            return nil
        }
    }
}

/// One level of encoding: holds what the value being encoded produced.
final class CompactEncoderImplementation: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    var value: CompactValue?

    init(codingPath: [any CodingKey]) {
        self.codingPath = codingPath
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // A second request (a subclass and its superclass sharing one encoder) adds to the same container.
        if case .keyed(let existing) = value {
            return KeyedEncodingContainer(CompactKeyedEncodingContainer(values: existing, codingPath: codingPath))
        }
        let values = KeyedValues()
        value = .keyed(values)
        return KeyedEncodingContainer(CompactKeyedEncodingContainer(values: values, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .unkeyed(let existing) = value {
            return CompactUnkeyedEncodingContainer(values: existing, codingPath: codingPath)
        }
        let values = UnkeyedValues()
        value = .unkeyed(values)
        return CompactUnkeyedEncodingContainer(values: values, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        CompactSingleValueEncodingContainer(encoder: self)
    }

    /// Encodes a nested value: directly if it is a primitive, else through a child encoder.
    static func box<T: Encodable>(_ value: T, at codingPath: [any CodingKey]) throws -> CompactValue {
        if let primitive = CompactValue(primitive: value) { return primitive }
        let encoder = CompactEncoderImplementation(codingPath: codingPath)
        try value.encode(to: encoder)
        // A value that encodes nothing is an empty keyed container, as in JSON.
        return encoder.value ?? .keyed(KeyedValues())
    }
}

private struct CompactKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let values: KeyedValues
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { values.append(key.stringValue, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { values.append(key.stringValue, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { values.append(key.stringValue, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { values.append(key.stringValue, .double(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { values.append(key.stringValue, .float(value)) }
    mutating func encode(_ value: Int, forKey key: Key) throws { values.append(key.stringValue, .int(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { values.append(key.stringValue, .int(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { values.append(key.stringValue, .int(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { values.append(key.stringValue, .int(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { values.append(key.stringValue, .int(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { values.append(key.stringValue, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { values.append(key.stringValue, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { values.append(key.stringValue, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { values.append(key.stringValue, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { values.append(key.stringValue, .uint(value)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        values.append(key.stringValue, try CompactEncoderImplementation.box(value, at: codingPath + [key]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = KeyedValues()
        values.append(key.stringValue, .keyed(nested))
        return KeyedEncodingContainer(CompactKeyedEncodingContainer<NestedKey>(values: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = UnkeyedValues()
        values.append(key.stringValue, .unkeyed(nested))
        return CompactUnkeyedEncodingContainer(values: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(key: "super") }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(key: key.stringValue) }

    private func superEncoder(key: String) -> any Encoder {
        let encoder = CompactEncoderImplementation(codingPath: codingPath + [CompactCodingKey(key)])
        values.append(key, .deferred(DeferredValue(encoder)))
        return encoder
    }
}

private struct CompactUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let values: UnkeyedValues
    let codingPath: [any CodingKey]
    var count: Int { values.values.count }

    mutating func encodeNil() throws { values.values.append(.null) }
    mutating func encode(_ value: Bool) throws { values.values.append(.bool(value)) }
    mutating func encode(_ value: String) throws { values.values.append(.string(value)) }
    mutating func encode(_ value: Double) throws { values.values.append(.double(value)) }
    mutating func encode(_ value: Float) throws { values.values.append(.float(value)) }
    mutating func encode(_ value: Int) throws { values.values.append(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { values.values.append(.int(value)) }
    mutating func encode(_ value: UInt64) throws { values.values.append(.uint(value)) }
    mutating func encode(_ value: UInt8) throws { values.values.append(.uint(UInt64(value))) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        values.values.append(try CompactEncoderImplementation.box(value, at: codingPath + [CompactCodingKey(index: count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = KeyedValues()
        let path = codingPath + [CompactCodingKey(index: count)]
        values.values.append(.keyed(nested))
        return KeyedEncodingContainer(CompactKeyedEncodingContainer<NestedKey>(values: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = UnkeyedValues()
        let path = codingPath + [CompactCodingKey(index: count)]
        values.values.append(.unkeyed(nested))
        return CompactUnkeyedEncodingContainer(values: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = CompactEncoderImplementation(codingPath: codingPath + [CompactCodingKey(index: count)])
        values.values.append(.deferred(DeferredValue(encoder)))
        return encoder
    }
}

private struct CompactSingleValueEncodingContainer: SingleValueEncodingContainer {
    let encoder: CompactEncoderImplementation
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ value: CompactValue) throws {
        guard encoder.value == nil else {
            throw EncodingError.invalidValue(
                value.kindDescription,
                .init(codingPath: codingPath, debugDescription: "a single value container was encoded into twice"))
        }
        encoder.value = value
    }

    mutating func encodeNil() throws { try set(.null) }
    mutating func encode(_ value: Bool) throws { try set(.bool(value)) }
    mutating func encode(_ value: String) throws { try set(.string(value)) }
    mutating func encode(_ value: Double) throws { try set(.double(value)) }
    mutating func encode(_ value: Float) throws { try set(.float(value)) }
    mutating func encode(_ value: Int) throws { try set(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { try set(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { try set(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { try set(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { try set(.int(value)) }
    mutating func encode(_ value: UInt) throws { try set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { try set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt16) throws { try set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt32) throws { try set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt64) throws { try set(.uint(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try set(try CompactEncoderImplementation.box(value, at: codingPath))
    }
}

/// A coding key for paths in errors and for `super`.
struct CompactCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(_ string: String) { stringValue = string }
    init(index: Int) {
        stringValue = "Index \(index)"
        intValue = index
    }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.init(index: intValue) }
}
