#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
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
        withUnsafeBytes(of: (UInt64(bitPattern: number) ^ (1 << 63)).bigEndian) { Array($0) }
    }
}
