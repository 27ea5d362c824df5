/// Decodes `Decodable` values from the compact binary format (see ``CompactValue``).
///
/// Malformed bytes (truncated, unknown tags, lengths past the end, invalid UTF-8, nesting
/// deeper than ``CompactValue/maximumDepth``) are a `DecodingError.dataCorrupted`; a value
/// of the wrong kind is a `typeMismatch`; a number out of the target type's range is
/// `dataCorrupted`. Nothing traps.
enum CompactDecoder {
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(DecodingError) -> T {
        let root: CompactValue
        do {
            root = try bytes.withUnsafeBytes { (buffer) throws(CompactFormatError) in try CompactValue.parse(buffer) }
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "malformed compact value: \(error)"))
        }
        do {
            return try CompactDecoderImplementation(value: root, codingPath: []).decodeValue(T.self)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "\(error)", underlyingError: error))
        }
    }
}

private struct CompactDecoderImplementation: Decoder {
    let value: CompactValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .keyed(let values) = value else { throw mismatch([String: Any].self, value, codingPath) }
        return KeyedDecodingContainer(CompactKeyedDecodingContainer<Key>(values: values, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .unkeyed(let values) = value else { throw mismatch([Any].self, value, codingPath) }
        return CompactUnkeyedDecodingContainer(values: values.values, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if let primitive = try primitive(type, value, codingPath) { return primitive }
        return try T(from: self)
    }
}

extension CompactDecoderImplementation: SingleValueDecodingContainer {
    func decodeNil() -> Bool {
        if case .null = value { return true }
        return false
    }
    func decode(_ type: Bool.Type) throws -> Bool { try bool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try string(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try double(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try float(value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try integer(value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(value, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type) }
}

private struct CompactKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let values: KeyedValues
    let codingPath: [any CodingKey]

    var allKeys: [Key] { values.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { values.index(of: key.stringValue) != nil }

    private func entry(_ key: Key) throws -> CompactValue {
        guard let index = values.index(of: key.stringValue) else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: codingPath, debugDescription: "no value for key \"\(key.stringValue)\""))
        }
        return values.values[index]
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try entry(key) { return true }
        return false
    }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try bool(entry(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try string(entry(key), codingPath + [key]) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try double(entry(key), codingPath + [key]) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try float(entry(key), codingPath + [key]) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(entry(key), codingPath + [key]) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(entry(key), codingPath + [key]) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try CompactDecoderImplementation(value: entry(key), codingPath: codingPath + [key]).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try CompactDecoderImplementation(value: entry(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try CompactDecoderImplementation(value: entry(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { try superDecoder(key: CompactCodingKey("super")) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try superDecoder(key: key) }

    private func superDecoder(key: any CodingKey) throws -> any Decoder {
        // As in JSON: a missing super value decodes as nil.
        let value = values.index(of: key.stringValue).map { values.values[$0] } ?? .null
        return CompactDecoderImplementation(value: value, codingPath: codingPath + [key])
    }
}

private struct CompactUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let values: [CompactValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(values: [CompactValue], codingPath: [any CodingKey]) {
        self.values = values
        self.codingPath = codingPath
    }

    var count: Int? { values.count }
    var isAtEnd: Bool { currentIndex >= values.count }

    private mutating func next<T>(_ type: T.Type) throws -> (CompactValue, [any CodingKey]) {
        let path = codingPath + [CompactCodingKey(index: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: path, debugDescription: "the unkeyed container has no more elements"))
        }
        defer { currentIndex += 1 }
        return (values[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { _ = try next(Never?.self); return false }
        if case .null = values[currentIndex] {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { let (v, p) = try next(type); return try bool(v, p) }
    mutating func decode(_ type: String.Type) throws -> String { let (v, p) = try next(type); return try string(v, p) }
    mutating func decode(_ type: Double.Type) throws -> Double { let (v, p) = try next(type); return try double(v, p) }
    mutating func decode(_ type: Float.Type) throws -> Float { let (v, p) = try next(type); return try float(v, p) }
    mutating func decode(_ type: Int.Type) throws -> Int { let (v, p) = try next(type); return try integer(v, p) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { let (v, p) = try next(type); return try integer(v, p) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { let (v, p) = try next(type); return try integer(v, p) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { let (v, p) = try next(type); return try integer(v, p) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try next(type)
        return try CompactDecoderImplementation(value: value, codingPath: path).decodeValue(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let (value, path) = try next([String: Any].self)
        return try CompactDecoderImplementation(value: value, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, path) = try next([Any].self)
        return try CompactDecoderImplementation(value: value, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, path) = try next(Any.self)
        return CompactDecoderImplementation(value: value, codingPath: path)
    }
}

// MARK: Primitives

private func mismatch(_ type: Any.Type, _ value: CompactValue, _ path: [any CodingKey]) -> DecodingError {
    .typeMismatch(type, .init(codingPath: path, debugDescription: "expected \(type), found \(value.kindDescription)"))
}

// The coding path is an autoclosure: building it costs an allocation per field, and it is
// only needed for an error.
private func bool(_ value: CompactValue, _ path: @autoclosure () -> [any CodingKey]) throws -> Bool {
    guard case .bool(let bool) = value else { throw mismatch(Bool.self, value, path()) }
    return bool
}

private func string(_ value: CompactValue, _ path: @autoclosure () -> [any CodingKey]) throws -> String {
    guard case .string(let string) = value else { throw mismatch(String.self, value, path()) }
    return string
}

private func double(_ value: CompactValue, _ path: @autoclosure () -> [any CodingKey]) throws -> Double {
    switch value {
    case .double(let double): return double
    case .float(let float): return Double(float)
    default: throw mismatch(Double.self, value, path())
    }
}

private func float(_ value: CompactValue, _ path: @autoclosure () -> [any CodingKey]) throws -> Float {
    switch value {
    case .float(let float): return float
    case .double(let double):
        // Like JSONDecoder: a Double that does not fit a Float is an error, not infinity.
        guard double.isNaN || double.isInfinite || abs(double) <= Double(Float.greatestFiniteMagnitude) else {
            throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "\(double) does not fit in Float"))
        }
        return Float(double)
    default: throw mismatch(Float.self, value, path())
    }
}

private func integer<T: FixedWidthInteger>(_ value: CompactValue, _ path: @autoclosure () -> [any CodingKey]) throws -> T {
    let converted: T?
    switch value {
    case .int(let int): converted = T(exactly: int)
    case .uint(let uint): converted = T(exactly: uint)
    default: throw mismatch(T.self, value, path())
    }
    guard let converted else {
        throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "\(value) does not fit in \(T.self)"))
    }
    return converted
}

/// The value of a type the format holds directly, decoded without a container; `nil` for
/// any other type.
private func primitive<T>(_ type: T.Type, _ value: CompactValue, _ path: [any CodingKey]) throws -> T? {
    // Metatype comparisons are pointer compares; the cast runs only on a match.
    if T.self == String.self { return try string(value, path) as? T }
    if T.self == Int.self { return try integer(value, path) as Int as? T }
    if T.self == Bool.self { return try bool(value, path) as? T }
    if T.self == Double.self { return try double(value, path) as? T }
    if T.self == UInt64.self { return try integer(value, path) as UInt64 as? T }
    if T.self == Int64.self { return try integer(value, path) as Int64 as? T }
    if T.self == UInt8.self { return try integer(value, path) as UInt8 as? T }
    if T.self == Float.self { return try float(value, path) as? T }
    return nil
}
