// Fuzzes the compact binary decoder that reads every remote request and response
// (`CompactDecoder.decode`), with arbitrary bytes decoded as several request types.
//
// Decoding errors are expected. Checked, besides "never traps or hangs": a value that
// decodes re-encodes (`CompactEncoder.encode`, whose streaming fast path must write the same
// bytes as `encodeThroughTree`) and decodes again to an equal value (bit for bit for
// floating point, byte for byte for strings).

@testable import DNA
import Foundation
import FuzzSupport

// MARK: Request types

/// The shapes of `KVActor`'s requests (DNAExamples is not a product of the package).
enum KV {
    struct Put: Codable, Equatable { var key: String; var value: String }
    struct Get: Codable, Equatable { var key: String }
    struct List: Codable, Equatable { var prefix: String; var after: String?; var limit: Int }
    struct Entry: Codable, Equatable { var key: String; var value: String }
}

struct Numbers: Codable, Equatable {
    var i8: Int8
    var i16: Int16
    var i32: Int32
    var i64: Int64
    var i: Int
    var u8: UInt8
    var u16: UInt16
    var u32: UInt32
    var u64: UInt64
    var u: UInt
    var d: Double
    var f: Float
    var b: Bool
}

enum Mode: String, Codable, Equatable, Hashable {
    case fast, safe, slow = "🐢"
}

enum Level: Int, Codable, Equatable, Hashable, CodingKeyRepresentable {
    case low = -1, mid = 0, high = 200
}

indirect enum Shape: Codable, Equatable {
    case none
    case circle(radius: Double)
    case rect(width: Float, height: Float?)
    case tagged(String, [Int8])
    case group([Shape])
    case wrapped(Shape?)
}

struct Everything: Codable, Equatable {
    var id: UInt64
    var name: String?
    var tags: [String]
    var bytes: [UInt8]
    var data: Data?
    var maybeBytes: [UInt8]?
    var optionals: [Int16?]?
    var doubleOptional: Int32??
    var matrix: [[Int32]]
    var byName: [String: Numbers]
    var byID: [Int: String?]
    var byMode: [Mode: UInt16]
    var byLevel: [Level: [Double]]
    var shapes: [Shape]
    var mode: Mode?
    var numbers: Numbers?
    var set: Set<Int8>
    var nested: [String: [String: [UInt32?]]]
}

/// Uses the containers by hand: nested containers, a super encoder, `decodeIfPresent`,
/// the unkeyed container's scalar calls, and several values in one unkeyed container.
class Base: Codable, Equatable {
    var id: Int64
    init(id: Int64) { self.id = id }

    static func == (a: Base, b: Base) -> Bool { a.isEqual(to: b) }
    func isEqual(to other: Base) -> Bool { type(of: self) == type(of: other) && id == other.id }

    private enum CodingKeys: String, CodingKey { case id }
}

final class Derived: Base {
    var point: (x: Int16, y: UInt32)
    var flags: [Bool]
    var note: String?
    var ratio: Float

    init(id: Int64, point: (x: Int16, y: UInt32), flags: [Bool], note: String?, ratio: Float) {
        self.point = point
        self.flags = flags
        self.note = note
        self.ratio = ratio
        super.init(id: id)
    }

    private enum CodingKeys: String, CodingKey { case point, flags, note, ratio }
    private enum PointKeys: String, CodingKey { case x, y }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let point = try container.nestedContainer(keyedBy: PointKeys.self, forKey: .point)
        self.point = (try point.decode(Int16.self, forKey: .x), try point.decode(UInt32.self, forKey: .y))
        var flags = try container.nestedUnkeyedContainer(forKey: .flags)
        var decoded: [Bool] = []
        while !flags.isAtEnd {
            if try flags.decodeNil() { continue }  // a nil is skipped
            decoded.append(try flags.decode(Bool.self))
        }
        self.flags = decoded
        note = try container.decodeIfPresent(String.self, forKey: .note)
        ratio = try container.decode(Float.self, forKey: .ratio)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var point = container.nestedContainer(keyedBy: PointKeys.self, forKey: .point)
        try point.encode(self.point.x, forKey: .x)
        try point.encode(self.point.y, forKey: .y)
        var flags = container.nestedUnkeyedContainer(forKey: .flags)
        for flag in self.flags { try flags.encode(flag) }
        try container.encodeIfPresent(note, forKey: .note)
        try container.encode(ratio, forKey: .ratio)
        try super.encode(to: container.superEncoder())
    }

    override func isEqual(to other: Base) -> Bool {
        guard let other = other as? Derived, super.isEqual(to: other) else { return false }
        return point == other.point && flags == other.flags && note == other.note
            && ratio.bitPattern == other.ratio.bitPattern
    }
}

/// A tuple-like value in one unkeyed container, every integer width through it.
struct Record: Codable, Equatable {
    var values: (Int8, Int16, Int32, Int64, Int, UInt8, UInt16, UInt32, UInt64, UInt, String, Double?)

    init(values: (Int8, Int16, Int32, Int64, Int, UInt8, UInt16, UInt32, UInt64, UInt, String, Double?)) {
        self.values = values
    }

    init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        values = (
            try c.decode(Int8.self), try c.decode(Int16.self), try c.decode(Int32.self), try c.decode(Int64.self),
            try c.decode(Int.self), try c.decode(UInt8.self), try c.decode(UInt16.self), try c.decode(UInt32.self),
            try c.decode(UInt64.self), try c.decode(UInt.self), try c.decode(String.self),
            try c.decodeIfPresent(Double.self)
        )
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(values.0); try c.encode(values.1); try c.encode(values.2); try c.encode(values.3)
        try c.encode(values.4); try c.encode(values.5); try c.encode(values.6); try c.encode(values.7)
        try c.encode(values.8); try c.encode(values.9); try c.encode(values.10)
        if let last = values.11 { try c.encode(last) }
    }

    static func == (a: Record, b: Record) -> Bool { deepEqual(a.values, b.values) }
}

// MARK: Equality

/// Equality for the round trip: `==`, except that floating-point values are compared by bit
/// pattern (so NaN equals itself, 0.0 differs from -0.0) and strings by UTF-8 bytes.
func deepEqual(_ a: Any, _ b: Any) -> Bool {
    let mirrorA = Mirror(reflecting: a)
    let mirrorB = Mirror(reflecting: b)
    guard mirrorA.subjectType == mirrorB.subjectType else { return false }
    if mirrorA.displayStyle == .optional {
        switch (mirrorA.children.first, mirrorB.children.first) {
        case (nil, nil): return true
        case (let x?, let y?): return deepEqual(x.value, y.value)
        default: return false
        }
    }
    if let x = a as? Double, let y = b as? Double { return x.bitPattern == y.bitPattern }
    if let x = a as? Float, let y = b as? Float { return x.bitPattern == y.bitPattern }
    if let x = a as? String, let y = b as? String { return x.utf8.elementsEqual(y.utf8) }
    if let x = a as? Data, let y = b as? Data { return x == y }
    if let x = a as? Base, let y = b as? Base { return x == y }
    if a is any BinaryInteger || a is Bool || a is any Equatable & RawRepresentable || mirrorA.displayStyle == .set {
        let x = a as! any Equatable
        return equal(x, b)
    }
    switch mirrorA.displayStyle {
    case .dictionary:
        // Children are (key, value) pairs in an order that depends on the instance.
        var pairsB: [AnyHashable: Any] = [:]
        for child in mirrorB.children {
            let pair = Array(Mirror(reflecting: child.value).children)
            pairsB[pair[0].value as! AnyHashable] = pair[1].value
        }
        guard pairsB.count == mirrorA.children.count else { return false }
        for child in mirrorA.children {
            let pair = Array(Mirror(reflecting: child.value).children)
            guard let valueB = pairsB[pair[0].value as! AnyHashable], deepEqual(pair[1].value, valueB) else {
                return false
            }
        }
        return true
    case .enum:
        guard "\(a)".prefix(while: { $0 != "(" }) == "\(b)".prefix(while: { $0 != "(" }) else { return false }
        fallthrough
    default:
        let childrenA = Array(mirrorA.children)
        let childrenB = Array(mirrorB.children)
        guard childrenA.count == childrenB.count else { return false }
        if childrenA.isEmpty, let x = a as? any Equatable { return equal(x, b) }
        return zip(childrenA, childrenB).allSatisfy { $0.label == $1.label && deepEqual($0.value, $1.value) }
    }
}

private func equal<T: Equatable>(_ a: T, _ b: Any) -> Bool {
    guard let b = b as? T else { return false }
    return a == b
}

// MARK: The target

/// `DNA_FUZZ_VERBOSE=1` prints what each input decodes as (for looking at a reproducer).
private let verbose = getenv("DNA_FUZZ_VERBOSE") != nil

private func check<T: Codable>(_: T.Type, _ bytes: [UInt8]) {
    let value: T
    do {
        value = try CompactDecoder.decode(T.self, from: bytes)
    } catch {
        if verbose { print("\(T.self): \(error)") }
        return  // a DecodingError (its type is checked by the compiler)
    }
    if verbose { print("\(T.self): \(value)") }
    let encoded: [UInt8]
    do {
        encoded = try CompactEncoder.encode(value)
        let throughTree = try CompactEncoder.encodeThroughTree(value)
        precondition(
            encoded == throughTree,
            "\(T.self): the streaming encoder wrote \(encoded), the tree \(throughTree), for \(value)")
    } catch {
        preconditionFailure("\(T.self) decoded from \(bytes) but does not encode: \(error); \(value)")
    }
    do {
        let again = try CompactDecoder.decode(T.self, from: encoded)
        precondition(deepEqual(value, again), "\(T.self): \(value) round-trips as \(again)")
    } catch {
        preconditionFailure("\(T.self): \(value) encoded as \(encoded) does not decode: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCompactDecoder(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    check(KV.Put.self, bytes)
    check(KV.Get.self, bytes)
    check(KV.List.self, bytes)
    check([KV.Entry].self, bytes)
    check(String?.self, bytes)
    check(Int.self, bytes)
    check(Float.self, bytes)
    check(Numbers.self, bytes)
    check(Everything.self, bytes)
    check(Shape.self, bytes)
    check(Derived.self, bytes)
    check(Record.self, bytes)
    check([Mode: [Level?]].self, bytes)
    return 0
}

// MARK: Seeds

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
    writeSeedsIfAsked {
        let numbers = Numbers(
            i8: -8, i16: 300, i32: -70000, i64: .min, i: -1, u8: 255, u16: 65535, u32: 1 << 31, u64: .max, u: 7,
            d: -0.0, f: 1.5, b: true)
        let everything = Everything(
            id: 1, name: "名前", tags: ["a", ""], bytes: [0, 255], data: Data([1, 2]), maybeBytes: nil,
            optionals: [1, nil, -2], doubleOptional: .some(nil), matrix: [[1], [], [2, 3]],
            byName: ["n": numbers], byID: [1: "one", -2: nil], byMode: [.slow: 3], byLevel: [.high: [.nan, 2]],
            shapes: [
                .none, .circle(radius: 1), .rect(width: 2, height: nil), .tagged("t", [-1]),
                .group([.wrapped(Shape.none)]), .wrapped(nil),
            ],
            mode: .fast, numbers: numbers, set: [1, -1], nested: ["x": ["y": [1, nil]]])
        func seed<T: Encodable>(_ name: String, _ value: T) -> (name: String, bytes: [UInt8]) {
            (name, try! CompactEncoder.encode(value))
        }
        return [
            seed("put", KV.Put(key: "user/1", value: "hello")),
            seed("get", KV.Get(key: "k")),
            seed("list", KV.List(prefix: "p", after: "a", limit: 100)),
            seed("entries", [KV.Entry(key: "k", value: "v")]),
            seed("string", "s"),
            seed("int", -5),
            seed("float", Float(2.5)),
            seed("numbers", numbers),
            seed("everything", everything),
            seed("shape", Shape.group([.circle(radius: 3), .wrapped(.tagged("x", [1, 2]))])),
            seed("derived", Derived(id: 5, point: (x: -3, y: 4), flags: [true, false], note: "n", ratio: 0.5)),
            seed("record", Record(values: (-1, 2, -3, 4, -5, 6, 7, 8, 9, 10, "r", 1.25))),
            seed("modes", [Mode.safe: [Level.low, nil]]),
        ]
    }
    return 0
}
