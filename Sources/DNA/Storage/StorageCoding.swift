#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// How module keys and values become bytes.
///
/// - `String`: its UTF-8 bytes, so keys sort as their UTF-8 bytes do.
/// - `Int`, `Int64`, `Int32`, `UInt64`, `UInt32`: 8 bytes big-endian, sign bit flipped, so
///   keys sort numerically.
/// - `[UInt8]`: the bytes themselves.
/// - anything else `Codable`: JSON (keys then sort by their JSON bytes).
@usableFromInline
enum StorageCoding {
    @usableFromInline
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
    private static let decoder = JSONDecoder()

    @inlinable
    static func encode<T: Encodable>(_ value: T) throws(DNAError) -> [UInt8] {
        switch value {
        case let string as String: return Array(string.utf8)
        case let bytes as [UInt8]: return bytes
        case let number as Int: return orderedBytes(Int64(number))
        case let number as Int64: return orderedBytes(number)
        case let number as Int32: return orderedBytes(Int64(number))
        case let number as UInt64: return withUnsafeBytes(of: number.bigEndian) { Array($0) }
        case let number as UInt32: return withUnsafeBytes(of: UInt64(number).bigEndian) { Array($0) }
        default:
            do { return Array(try encoder.encode(value)) } catch {
                throw DNAError(.encodingFailed, "cannot encode \(T.self) for storage", underlying: error)
            }
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(DNAError) -> T {
        if T.self == String.self { return String(decoding: bytes, as: UTF8.self) as! T }
        if T.self == [UInt8].self { return bytes as! T }
        if T.self == Int.self || T.self == Int64.self || T.self == Int32.self || T.self == UInt64.self || T.self == UInt32.self {
            guard bytes.count == 8 else {
                throw DNAError(.decodingFailed, "stored \(T.self) has \(bytes.count) bytes, expected 8")
            }
            let raw = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            switch T.self {
            case is UInt64.Type: return raw as! T
            case is UInt32.Type: return UInt32(truncatingIfNeeded: raw) as! T
            case is Int.Type: return Int(Int64(bitPattern: raw ^ (1 << 63))) as! T
            case is Int32.Type: return Int32(truncatingIfNeeded: Int64(bitPattern: raw ^ (1 << 63))) as! T
            default: return Int64(bitPattern: raw ^ (1 << 63)) as! T
            }
        }
        do { return try decoder.decode(T.self, from: Data(bytes)) } catch {
            throw DNAError(.decodingFailed, "stored data is not a valid \(T.self)", underlying: error)
        }
    }

    @inlinable
    static func orderedBytes(_ number: Int64) -> [UInt8] {
        withUnsafeBytes(of: orderedBits(number).bigEndian) { Array($0) }
    }

    @inlinable
    static func orderedBits(_ number: Int64) -> UInt64 { UInt64(bitPattern: number) ^ (1 << 63) }

    /// The identity of a module key: two keys are the same key exactly when their encodings
    /// (``encode(_:)``) are the same bytes — in memory as in the store. `String`'s `==`
    /// would merge canonically equivalent spellings, `Double`'s `0.0` and `-0.0`, and a
    /// type's own `==` whatever it likes; the store would keep them apart.
    @inlinable
    static func identity<T: Encodable>(_ key: T) throws(DNAError) -> KeyIdentity {
        switch key {
        case let string as String: return .utf8(string)
        case let number as Int: return .integer(orderedBits(Int64(number)))
        case let number as Int64: return .integer(orderedBits(number))
        case let number as Int32: return .integer(orderedBits(Int64(number)))
        case let number as UInt64: return .integer(number)
        case let number as UInt32: return .integer(UInt64(number))
        default: return .bytes(try encode(key))
        }
    }
}

/// A module key as the store tells keys apart: by the bytes of its encoding. Without
/// allocating for the common kinds: a `String` is compared by its UTF-8 bytes (its
/// encoding), an integer by the 8 bytes it encodes to.
@usableFromInline
enum KeyIdentity: Hashable, Sendable {
    case utf8(String)
    case integer(UInt64)
    case bytes([UInt8])

    @inlinable
    static func == (lhs: KeyIdentity, rhs: KeyIdentity) -> Bool {
        switch (lhs, rhs) {
        case (.utf8(var a), .utf8(var b)): a.withUTF8 { x in b.withUTF8 { y in x.elementsEqual(y) } }
        case (.integer(let a), .integer(let b)): a == b
        case (.bytes(let a), .bytes(let b)): a == b
        default: false
        }
    }

    @inlinable
    func hash(into hasher: inout Hasher) {
        switch self {
        case .utf8(var string): string.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        case .integer(let number): hasher.combine(number)
        case .bytes(let bytes): bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }
}
