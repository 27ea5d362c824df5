import DNATransport

/// The compact binary format that requests and responses cross the network in.
///
/// A value is a tag byte and its payload; integers are LEB128 varints (signed ones
/// zig-zag encoded), so small numbers take one byte:
///
/// | tag | value | payload |
/// |-----|-------|---------|
/// | 0 | nil | — |
/// | 1, 2 | false, true | — |
/// | 3 | signed integer | zig-zag varint |
/// | 4 | unsigned integer | varint |
/// | 5 | `Double` | 8 bytes, IEEE 754 bit pattern, little-endian |
/// | 6 | `Float` | 4 bytes, IEEE 754 bit pattern, little-endian |
/// | 7 | string | varint byte count, UTF-8 |
/// | 8 | keyed container | varint count, then count × (key as varint length + UTF-8, value) |
/// | 9 | unkeyed container | varint count, then count values |
///
/// Keys are sent by name, so optional fields that are absent and fields in another order
/// decode as with JSON. It is several times faster than `JSONEncoder`/`JSONDecoder` for
/// the small messages actors exchange (`dna-bench remote-calls`).
enum CompactValue {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case float(Float)
    case string(String)
    case keyed(KeyedValues)
    case unkeyed(UnkeyedValues)
    /// A `superEncoder()` slot, filled after it was placed; never parsed.
    case deferred(DeferredValue)

    enum Tag: UInt8 {
        case null = 0, `false`, `true`, int, uint, double, float, string, keyed, unkeyed
    }

    /// Nesting deeper than this is refused when parsing (it would otherwise let a peer
    /// exhaust the stack).
    static let maximumDepth = 128

    var kindDescription: String {
        switch self {
        case .null: "nil"
        case .bool: "a Bool"
        case .int: "a signed integer"
        case .uint: "an unsigned integer"
        case .double: "a Double"
        case .float: "a Float"
        case .string: "a String"
        case .keyed: "a keyed container"
        case .unkeyed: "an unkeyed container"
        case .deferred(let slot): slot.value?.kindDescription ?? "nothing"
        }
    }
}

/// The entries of a keyed container, in the order they were encoded.
final class KeyedValues {
    var keys: [String] = []
    var values: [CompactValue] = []
    /// Where the last lookup ended: synthesized `Decodable` asks in encoding order, so the
    /// next key is nearly always the next entry.
    var cursor = 0

    init() {}

    init(keys: [String], values: [CompactValue]) {
        self.keys = keys
        self.values = values
    }

    func append(_ key: String, _ value: CompactValue) {
        keys.append(key)
        values.append(value)
    }

    func index(of key: String) -> Int? {
        let count = keys.count
        guard count > 0 else { return nil }
        var index = cursor < count ? cursor : 0
        for _ in 0..<count {
            if keys[index] == key {
                cursor = index + 1
                return index
            }
            index += 1
            if index == count { index = 0 }
        }
        return nil
    }
}

/// The elements of an unkeyed container.
final class UnkeyedValues {
    var values: [CompactValue] = []
    init() {}
}

/// What a `superEncoder()` encodes, read when the whole value is written.
final class DeferredValue {
    let encoder: CompactEncoderImplementation
    var value: CompactValue? { encoder.value }
    init(_ encoder: CompactEncoderImplementation) { self.encoder = encoder }
}

// MARK: Writing

extension CompactValue {
    func write(into bytes: inout [UInt8]) {
        switch self {
        case .null:
            bytes.append(Tag.null.rawValue)
        case .bool(let value):
            bytes.append(value ? Tag.true.rawValue : Tag.false.rawValue)
        case .int(let value):
            bytes.append(Tag.int.rawValue)
            Self.writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), into: &bytes)
        case .uint(let value):
            bytes.append(Tag.uint.rawValue)
            Self.writeVarint(value, into: &bytes)
        case .double(let value):
            bytes.append(Tag.double.rawValue)
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case .float(let value):
            bytes.append(Tag.float.rawValue)
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case .string(let value):
            bytes.append(Tag.string.rawValue)
            Self.writeString(value, into: &bytes)
        case .keyed(let container):
            bytes.append(Tag.keyed.rawValue)
            Self.writeVarint(UInt64(container.keys.count), into: &bytes)
            for index in container.keys.indices {
                Self.writeString(container.keys[index], into: &bytes)
                container.values[index].write(into: &bytes)
            }
        case .unkeyed(let container):
            bytes.append(Tag.unkeyed.rawValue)
            Self.writeVarint(UInt64(container.values.count), into: &bytes)
            for value in container.values { value.write(into: &bytes) }
        case .deferred(let slot):
            // A super encoder nobody encoded into is an empty keyed container, as in JSON.
            (slot.value ?? .keyed(KeyedValues())).write(into: &bytes)
        }
    }

    static func writeVarint(_ value: UInt64, into bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    static func writeString(_ string: String, into bytes: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count), into: &bytes)
            bytes.append(contentsOf: utf8)
        }
    }
}

// MARK: Parsing

/// Why bytes are not a compact value; the decoder reports it as `DecodingError.dataCorrupted`.
struct CompactFormatError: Error, CustomStringConvertible {
    var description: String
}

extension CompactValue {
    /// Parses one value that takes all of `bytes`.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(CompactFormatError) -> CompactValue {
        var reader = Reader(bytes: bytes)
        let value = try reader.value(depth: 0)
        guard reader.offset == bytes.count else {
            throw CompactFormatError(description: "\(bytes.count - reader.offset) bytes after the value")
        }
        return value
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        var remaining: Int { bytes.count - offset }

        mutating func byte() throws(CompactFormatError) -> UInt8 {
            guard offset < bytes.count else { throw CompactFormatError(description: "truncated at byte \(offset)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func varint() throws(CompactFormatError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = try byte()
                if shift == 63 && byte > 1 { throw CompactFormatError(description: "varint overflows 64 bits at byte \(offset)") }
                result |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return result }
                shift += 7
            }
        }

        /// A count or length, checked against the bytes left (each element takes at least one).
        mutating func length() throws(CompactFormatError) -> Int {
            let value = try varint()
            guard value <= UInt64(remaining) else {
                throw CompactFormatError(description: "length \(value) exceeds the \(remaining) bytes left at byte \(offset)")
            }
            return Int(value)
        }

        mutating func string() throws(CompactFormatError) -> String {
            let length = try length()
            let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
            offset += length
            guard let string = String(validatingUTF8Bytes: slice) else {
                throw CompactFormatError(description: "string is not valid UTF-8 at byte \(offset - length)")
            }
            return string
        }

        mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws(CompactFormatError) -> T {
            let size = MemoryLayout<T>.size
            guard remaining >= size else { throw CompactFormatError(description: "truncated at byte \(offset)") }
            var value: T = 0
            withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size])) }
            offset += size
            return T(littleEndian: value)
        }

        mutating func value(depth: Int) throws(CompactFormatError) -> CompactValue {
            let tagByte = try byte()
            guard let tag = Tag(rawValue: tagByte) else {
                throw CompactFormatError(description: "unknown tag \(tagByte) at byte \(offset - 1)")
            }
            switch tag {
            case .null: return .null
            case .false: return .bool(false)
            case .true: return .bool(true)
            case .int:
                let zigzag = try varint()
                return .int(Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1))
            case .uint: return .uint(try varint())
            case .double: return .double(Double(bitPattern: try fixed(UInt64.self)))
            case .float: return .float(Float(bitPattern: try fixed(UInt32.self)))
            case .string: return .string(try string())
            case .keyed, .unkeyed:
                guard depth < CompactValue.maximumDepth else {
                    throw CompactFormatError(description: "nesting deeper than \(CompactValue.maximumDepth)")
                }
                let count = try length()
                // Filled as locals, then handed over: appending to the containers' stored
                // properties would check exclusive access on every element.
                var values: [CompactValue] = []
                values.reserveCapacity(count)
                if tag == .unkeyed {
                    for _ in 0..<count { values.append(try value(depth: depth + 1)) }
                    let container = UnkeyedValues()
                    container.values = values
                    return .unkeyed(container)
                }
                var keys: [String] = []
                keys.reserveCapacity(count)
                for _ in 0..<count {
                    keys.append(try string())
                    values.append(try value(depth: depth + 1))
                }
                return .keyed(KeyedValues(keys: keys, values: values))
            }
        }
    }
}
