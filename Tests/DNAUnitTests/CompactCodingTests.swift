@testable import DNA
import Foundation
import Testing

@Suite("Compact binary coding of requests and responses")
struct CompactCodingTests {
    enum Shape: Codable, Equatable {
        case circle(radius: Double)
        case polygon([Point])
        case empty
    }

    struct Point: Codable, Equatable {
        var x: Int32
        var y: Int32
    }

    struct Everything: Codable, Equatable {
        var string = "héllo, 世界 🌍"
        var empty = ""
        var bool = true
        var int = Int.min
        var int8 = Int8.min
        var int16 = Int16.max
        var int32 = Int32.min
        var int64 = Int64.max
        var uint = UInt.max
        var uint8 = UInt8.max
        var uint16 = UInt16.max
        var uint32 = UInt32.max
        var uint64 = UInt64.max
        var double = -1.5e300
        var float: Float = 3.25
        var optionalPresent: String? = "here"
        var optionalAbsent: Int? = nil
        var array = [1, 2, 3]
        var nested = [[Point(x: 1, y: -1)], []]
        var dictionary = ["b": 2, "a": 1]
        var intKeyed = [7: "seven", -1: "minus one"]
        var shapes: [Shape] = [.circle(radius: 2), .polygon([Point(x: 0, y: 0), Point(x: 3, y: 4)]), .empty]
        var date = Date(timeIntervalSince1970: 1_700_000_000.25)
        var data = Data([0, 1, 254, 255])
        var url = URL(string: "https://example.com/a?b=c")!
        var uuid = UUID()
        var set: Set<String> = ["x", "y"]
    }

    func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        try CompactDecoder.decode(T.self, from: CompactEncoder.encode(value))
    }

    @Test func everyKindOfValueRoundTrips() throws {
        let value = Everything()
        #expect(try roundTrip(value) == value)
    }

    @Test func topLevelPrimitivesAndCollectionsRoundTrip() throws {
        #expect(try roundTrip("just a string") == "just a string")
        #expect(try roundTrip(42) == 42)
        #expect(try roundTrip(Optional<Int>.none) == nil)
        #expect(try roundTrip([String: [Int]]()) == [:])
        #expect(try roundTrip([Point(x: 1, y: 2)]) == [Point(x: 1, y: 2)])
        #expect(try roundTrip(Double.infinity) == .infinity)
    }

    @Test func smallValuesAreSmallerThanJSON() throws {
        struct Put: Codable { var key: String; var value: String }
        let compact = try CompactEncoder.encode(Put(key: "12345", value: "test"))
        let json = try JSONEncoder().encode(Put(key: "12345", value: "test"))
        #expect(compact.count < json.count)
    }

    @Test func fieldsDecodeInAnyOrderAndAbsentOptionalsAreNil() throws {
        struct Written: Codable { var b: Int; var a: String; var extra: Bool }
        struct Read: Codable, Equatable { var a: String; var b: Int; var missing: Double? }
        let bytes = try CompactEncoder.encode(Written(b: 2, a: "one", extra: true))
        #expect(try CompactDecoder.decode(Read.self, from: bytes) == Read(a: "one", b: 2, missing: nil))
    }

    @Test func classHierarchiesWithSuperEncodersRoundTrip() throws {
        class Base: Codable {
            var id = 0
            init(id: Int) { self.id = id }
        }
        final class Derived: Base {
            var name = ""
            init(id: Int, name: String) {
                self.name = name
                super.init(id: id)
            }
            enum CodingKeys: String, CodingKey { case name }
            required init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decode(String.self, forKey: .name)
                try super.init(from: container.superDecoder())
            }
            override func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
                try super.encode(to: container.superEncoder())
            }
        }
        let decoded = try CompactDecoder.decode(Derived.self, from: CompactEncoder.encode(Derived(id: 7, name: "seven")))
        #expect(decoded.id == 7)
        #expect(decoded.name == "seven")
    }

    @Test func wrongTypesAndMissingKeysAreDecodingErrors() throws {
        struct Wide: Codable { var n: Int; var s: String }
        struct Narrow: Codable { var n: UInt8; var s: String }
        struct Other: Codable { var n: String }
        struct Missing: Codable { var absent: Int }
        let bytes = try CompactEncoder.encode(Wide(n: 300, s: "x"))
        #expect(throws: DecodingError.self) { try CompactDecoder.decode(Narrow.self, from: bytes) }
        #expect(throws: DecodingError.self) { try CompactDecoder.decode(Other.self, from: bytes) }
        #expect(throws: DecodingError.self) { try CompactDecoder.decode(Missing.self, from: bytes) }
        #expect(throws: DecodingError.self) { try CompactDecoder.decode([Int].self, from: bytes) }
        #expect(throws: DecodingError.self) { try CompactDecoder.decode(UInt.self, from: CompactEncoder.encode(-1)) }
    }

    @Test func malformedBytesAreDecodingErrorsNotCrashes() throws {
        struct Put: Codable { var key: String; var value: String }
        let good = try CompactEncoder.encode(Put(key: "key", value: "value"))
        // Every truncation, and every single-byte corruption, either decodes or throws.
        for length in 0..<good.count {
            #expect(throws: DecodingError.self) { try CompactDecoder.decode(Put.self, from: Array(good[..<length])) }
        }
        for index in good.indices {
            for byte: UInt8 in [0x00, 0x07, 0x7f, 0x80, 0xff] {
                var bad = good
                bad[index] = byte
                _ = try? CompactDecoder.decode(Put.self, from: bad)
            }
        }
        let hostile: [[UInt8]] = [
            [],
            [0xee],  // unknown tag
            good + [0],  // trailing bytes
            [7, 0xff, 0xff, 0xff, 0xff, 0x0f],  // string longer than the input
            [9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],  // count longer than the input
            [4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],  // varint over 64 bits
            [7, 2, 0xc3, 0x28],  // invalid UTF-8
            Array(repeating: 9, count: 10_000).flatMap { [$0, 1] },  // nested 10,000 deep
        ]
        for bytes in hostile {
            #expect(throws: DecodingError.self) { try CompactDecoder.decode([Int].self, from: bytes) }
        }
    }

    @Test func nestingUpToTheLimitDecodes() throws {
        var bytes: [UInt8] = []
        // maximumDepth containers, one inside the other.
        for _ in 1..<CompactValue.maximumDepth { bytes += [9, 1] }
        bytes += [9, 0]
        struct Nest: Decodable {
            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                if !container.isAtEnd { _ = try container.decode(Nest.self) }
            }
        }
        _ = try CompactDecoder.decode(Nest.self, from: bytes)
        #expect(throws: DecodingError.self) { try CompactDecoder.decode(Nest.self, from: [9, 1] + bytes) }
    }

    // MARK: The streaming fast path

    /// Goes back to a nested container after writing to its parent: legal `Codable`, but
    /// it cannot be streamed, so the encoder falls back to the tree.
    struct Interleaved: Codable, Equatable {
        var inner: [String: Int]
        var after: String

        enum CodingKeys: String, CodingKey { case inner, after }
        enum InnerKeys: String, CodingKey { case first, second }

        init(inner: [String: Int], after: String) {
            self.inner = inner
            self.after = after
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let nested = try container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
            inner = [
                "first": try nested.decode(Int.self, forKey: .first), "second": try nested.decode(Int.self, forKey: .second),
            ]
            after = try container.decode(String.self, forKey: .after)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            var nested = container.nestedContainer(keyedBy: InnerKeys.self, forKey: .inner)
            try nested.encode(inner["first"], forKey: .first)
            try container.encode(after, forKey: .after)
            try nested.encode(inner["second"], forKey: .second)  // back to the closed container
        }
    }

    /// Writes nothing: an empty keyed container, as in JSON.
    struct Nothing: Codable, Equatable {
        init() {}
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    /// A single value container used twice: an error, reported by the tree with its path.
    struct Twice: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(1)
            try container.encode(2)
        }
    }

    @Test func theStreamingPathWritesWhatTheTreeWrites() throws {
        func same<T: Codable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let streamed = try CompactEncoder.encode(value)
            #expect(streamed == (try CompactEncoder.encodeThroughTree(value)), sourceLocation: sourceLocation)
            #expect(try CompactDecoder.decode(T.self, from: streamed) == value, sourceLocation: sourceLocation)
        }
        try same(Everything())
        try same(Point(x: 1, y: -2))
        try same([Shape.circle(radius: 1), .empty, .polygon([])])
        try same(Array(0..<300))  // a count of two varint bytes
        try same([String: [Int]](uniqueKeysWithValues: (0..<200).map { ("k\($0)", [$0]) }))
        try same([[[Int?]]]([[[1, nil], []], []]))
        try same([Nothing(), Nothing()])
        #expect(throws: EncodingError.self) { try CompactEncoder.encode(Nothing()) }
        try same(Interleaved(inner: ["first": 1, "second": 2], after: "x"))
        try same([Interleaved(inner: ["first": 3, "second": 4], after: "y")])
    }

    struct Keys: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Reads an unkeyed container's count after moving on from it.
    struct CountAfterClose: Encodable {
        func encode(to encoder: any Encoder) throws {
            var outer = encoder.container(keyedBy: Keys.self)
            var list = outer.nestedUnkeyedContainer(forKey: Keys("items"))
            try list.encode(1)
            try list.encode(2)
            try outer.encode("x", forKey: Keys("a"))
            try outer.encode(list.count, forKey: Keys("n"))
        }
    }

    struct Failure: Error {}

    /// Writes part of itself, then throws.
    struct Failing: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: Keys("x"))
            throw Failure()
        }
    }

    /// Swallows its nested values' errors: what they wrote must not stay.
    struct SwallowsErrors: Encodable {
        func encode(to encoder: any Encoder) throws {
            var keyed = encoder.container(keyedBy: Keys.self)
            try? keyed.encode(Failing(), forKey: Keys("a"))
            try keyed.encode(1, forKey: Keys("b"))
            var list = keyed.nestedUnkeyedContainer(forKey: Keys("list"))
            try? list.encode(Failing())
            try list.encode(2)
        }
    }

    @Test func whatCannotBeStreamedFallsBackToTheTree() throws {
        #expect(try CompactEncoder.encode(CountAfterClose()) == (try CompactEncoder.encodeThroughTree(CountAfterClose())))
        #expect(try CompactEncoder.encode(SwallowsErrors()) == (try CompactEncoder.encodeThroughTree(SwallowsErrors())))
        #expect(throws: EncodingError.self) { try CompactEncoder.encode(Failing()) }

        // Writing straight into the stream, `Interleaved` would put `second` after `after`,
        // outside `inner`: decoding it checks the tree wrote it where it belongs.
        let value = Interleaved(inner: ["first": 1, "second": 2], after: "x")
        let writer = CompactStreamingWriter()
        let encoder = CompactStreamingEncoder(writer: writer, codingPath: [])
        #expect(throws: CompactStreamingGaveUp.self) { try value.encode(to: encoder) }
        #expect(try CompactDecoder.decode(Interleaved.self, from: CompactEncoder.encode(value)) == value)

        #expect(throws: EncodingError.self) { try CompactEncoder.encode(Twice()) }

        // More entries than the count placeholder holds.
        let large = [UInt8](repeating: 7, count: 1 << 21)
        let streamed = CompactStreamingWriter()
        try large.encode(to: CompactStreamingEncoder(writer: streamed, codingPath: []))
        streamed.finish()
        #expect(!streamed.succeeded)
        let encoded = try CompactEncoder.encode(large)
        #expect(encoded.prefix(6) == [9, 0x80, 0x80, 0x80, 0x01, 4])  // the count 2^21 takes four bytes; then the first element
        #expect(encoded.count == 5 + 2 * large.count)
    }
}
