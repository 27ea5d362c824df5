/// The fast path of ``CompactEncoder``: writes the bytes while the value encodes, with no
/// tree of ``CompactValue``s in between (a request is encoded on the sender's thread for
/// every remote send, so this is a hot path).
///
/// It handles values whose containers are filled one after another, which is what
/// synthesized `Encodable` conformances do. A value that writes to a container again after
/// moving on to a sibling, asks for a super encoder, encodes into a single value container
/// twice, throws, or fills a container with 2^21 or more entries makes it give up
/// (``succeeded`` is `false`); ``CompactEncoder`` then encodes the value again through the
/// tree, which handles all of these (and reports errors with their coding paths). Both
/// write the same bytes.
final class CompactStreamingWriter {
    private(set) var bytes: [UInt8] = []
    /// Containers still open, outermost first. Only the last may be written to; writing to
    /// an outer one closes those after it.
    private var open: [OpenContainer] = []
    private var nextID = 0
    private(set) var succeeded = true
    /// How many containers were closed. Closing one shrinks its count, moving the bytes
    /// after it, so a place taken before that is no longer where it was.
    private(set) var closedCount = 0

    private struct OpenContainer {
        var id: Int
        /// Where the 3-byte placeholder for the entry count is.
        var countOffset: Int
    }
    /// The entries of every container so far, by id (ids are handed out in order), kept
    /// after it closes: an unkeyed container's `count` may be read then.
    private var counts: [Int] = []

    /// Counts are written in a 3-byte placeholder, then shrunk to their varint size on close.
    private static let placeholderSize = 3
    private static let maximumCount = 1 << 21

    init() {
        bytes.reserveCapacity(64)
    }

    func giveUp() { succeeded = false }

    /// Writes the tag of a new container and opens it; returns its id.
    func openContainer(tag: CompactValue.Tag) -> Int {
        bytes.append(tag.rawValue)
        let id = nextID
        nextID += 1
        counts.append(0)
        open.append(OpenContainer(id: id, countOffset: bytes.count))
        bytes.append(contentsOf: [0, 0, 0])
        return id
    }

    /// Makes `id` the innermost open container (closing those opened after it) and counts
    /// one more entry in it. `false` if it was closed already: the stream cannot go back.
    func beginEntry(in id: Int) -> Bool {
        guard succeeded else { return false }
        while let last = open.last, last.id != id {
            close(open.removeLast())
        }
        guard !open.isEmpty else {
            succeeded = false
            return false
        }
        counts[id] += 1
        return true
    }

    /// The entries written so far to `id`.
    func count(of id: Int) -> Int { counts[id] }

    func isInnermost(_ id: Int) -> Bool { open.last?.id == id }

    /// Closes every container; the bytes are then complete.
    func finish() {
        while let last = open.popLast() { close(last) }
    }

    func write(_ value: CompactValue) { value.write(into: &bytes) }

    func writeString(_ string: String) {
        bytes.append(CompactValue.Tag.string.rawValue)
        CompactValue.writeString(string, into: &bytes)
    }

    func writeKey(_ key: String) { CompactValue.writeString(key, into: &bytes) }

    private func close(_ container: OpenContainer) {
        closedCount += 1
        let count = counts[container.id]
        guard count < Self.maximumCount else {
            succeeded = false
            return
        }
        let start = container.countOffset
        if count < 0x80 {
            // The usual case: one byte, and the entries move back by two.
            bytes[start] = UInt8(count)
            bytes.removeSubrange(start + 1..<start + Self.placeholderSize)
        } else {
            var varint: [UInt8] = []
            CompactValue.writeVarint(UInt64(count), into: &varint)
            bytes.replaceSubrange(start..<start + Self.placeholderSize, with: varint)
        }
    }
}

/// One value's place in the stream: the value being encoded, or a nested value.
final class CompactStreamingEncoder: Encoder {
    let writer: CompactStreamingWriter
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// Where this value starts; it must be written there, and only once.
    private let position: Int
    private let closedCountAtStart: Int
    private var keyedID: Int?
    private var unkeyedID: Int?
    private var written = false

    init(writer: CompactStreamingWriter, codingPath: [any CodingKey]) {
        self.writer = writer
        self.codingPath = codingPath
        self.position = writer.bytes.count
        self.closedCountAtStart = writer.closedCount
    }

    /// Whether this value can be written now: nothing yet, and nothing after its place.
    private var canStart: Bool {
        !written && writer.bytes.count == position && writer.closedCount == closedCountAtStart && writer.succeeded
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // A second request (a subclass and its superclass sharing one encoder) adds to the
        // same container, if it is still the one being written.
        if let id = keyedID {
            if !writer.isInnermost(id) { writer.giveUp() }
            return KeyedEncodingContainer(CompactStreamingKeyedContainer(writer: writer, id: id, codingPath: codingPath))
        }
        if !canStart { writer.giveUp() }
        written = true
        let id = writer.openContainer(tag: .keyed)
        keyedID = id
        return KeyedEncodingContainer(CompactStreamingKeyedContainer(writer: writer, id: id, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if let id = unkeyedID {
            if !writer.isInnermost(id) { writer.giveUp() }
            return CompactStreamingUnkeyedContainer(writer: writer, id: id, codingPath: codingPath)
        }
        if !canStart { writer.giveUp() }
        written = true
        let id = writer.openContainer(tag: .unkeyed)
        unkeyedID = id
        return CompactStreamingUnkeyedContainer(writer: writer, id: id, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { CompactStreamingSingleValue(encoder: self) }

    fileprivate func writeSingle(_ value: CompactValue) throws {
        guard canStart else {
            writer.giveUp()
            throw CompactStreamingGaveUp()
        }
        written = true
        writer.write(value)
    }

    fileprivate func writeSingle<T: Encodable>(_ value: T) throws {
        guard canStart else {
            writer.giveUp()
            throw CompactStreamingGaveUp()
        }
        if let primitive = CompactValue(primitive: value) {
            written = true
            writer.write(primitive)
            return
        }
        // The nested value takes this place.
        do { try value.encode(to: self) } catch {
            // What it wrote stays in the stream even if the caller catches the error; the
            // tree writes nothing for a value that threw.
            writer.giveUp()
            throw error
        }
        finishValue()
    }

    /// Whether the value wrote anything (a container or a single value).
    var wroteValue: Bool { written }

    /// After the value encoded: a value that wrote nothing is an empty keyed container, as in JSON.
    func finishValue() {
        guard !written, writer.succeeded else { return }
        if !canStart {
            writer.giveUp()
            return
        }
        written = true
        _ = writer.openContainer(tag: .keyed)
    }

    /// Encodes a nested value at the end of the stream.
    static func encodeNested<T: Encodable>(
        _ value: T, writer: CompactStreamingWriter, codingPath: @autoclosure () -> [any CodingKey]
    ) throws {
        if let primitive = CompactValue(primitive: value) {
            writer.write(primitive)
            return
        }
        let encoder = CompactStreamingEncoder(writer: writer, codingPath: codingPath())
        do { try value.encode(to: encoder) } catch {
            // Its key and part of it are written already (see `writeSingle`).
            writer.giveUp()
            throw error
        }
        encoder.finishValue()
    }
}

/// Thrown inside the fast path when it gives up; never escapes ``CompactEncoder``.
struct CompactStreamingGaveUp: Error {}

private struct CompactStreamingKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let writer: CompactStreamingWriter
    let id: Int
    let codingPath: [any CodingKey]

    private func entry(_ key: Key) throws {
        guard writer.beginEntry(in: id) else { throw CompactStreamingGaveUp() }
        writer.writeKey(key.stringValue)
    }

    mutating func encodeNil(forKey key: Key) throws { try entry(key); writer.write(.null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try entry(key); writer.write(.bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { try entry(key); writer.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try entry(key); writer.write(.double(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try entry(key); writer.write(.float(value)) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try entry(key); writer.write(.int(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try entry(key); writer.write(.int(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try entry(key); writer.write(.int(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try entry(key); writer.write(.int(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try entry(key); writer.write(.int(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try entry(key); writer.write(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try entry(key); writer.write(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try entry(key); writer.write(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try entry(key); writer.write(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try entry(key); writer.write(.uint(value)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try entry(key)
        try CompactStreamingEncoder.encodeNested(value, writer: writer, codingPath: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        if writer.beginEntry(in: id) { writer.writeKey(key.stringValue) }
        let nested = writer.openContainer(tag: .keyed)
        return KeyedEncodingContainer(
            CompactStreamingKeyedContainer<NestedKey>(writer: writer, id: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        if writer.beginEntry(in: id) { writer.writeKey(key.stringValue) }
        let nested = writer.openContainer(tag: .unkeyed)
        return CompactStreamingUnkeyedContainer(writer: writer, id: nested, codingPath: codingPath + [key])
    }

    // Super encoders are filled after their place is taken: only the tree can do that.
    mutating func superEncoder() -> any Encoder { giveUp() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { giveUp() }

    private func giveUp() -> any Encoder {
        writer.giveUp()
        return CompactEncoderImplementation(codingPath: codingPath)
    }
}

private struct CompactStreamingUnkeyedContainer: UnkeyedEncodingContainer {
    let writer: CompactStreamingWriter
    let id: Int
    let codingPath: [any CodingKey]
    var count: Int { writer.count(of: id) }

    private func element() throws {
        guard writer.beginEntry(in: id) else { throw CompactStreamingGaveUp() }
    }

    mutating func encodeNil() throws { try element(); writer.write(.null) }
    mutating func encode(_ value: Bool) throws { try element(); writer.write(.bool(value)) }
    mutating func encode(_ value: String) throws { try element(); writer.writeString(value) }
    mutating func encode(_ value: Double) throws { try element(); writer.write(.double(value)) }
    mutating func encode(_ value: Float) throws { try element(); writer.write(.float(value)) }
    mutating func encode(_ value: Int) throws { try element(); writer.write(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { try element(); writer.write(.int(value)) }
    mutating func encode(_ value: UInt64) throws { try element(); writer.write(.uint(value)) }
    mutating func encode(_ value: UInt8) throws { try element(); writer.write(.uint(UInt64(value))) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = count
        try element()
        try CompactStreamingEncoder.encodeNested(
            value, writer: writer, codingPath: codingPath + [CompactCodingKey(index: index)])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [CompactCodingKey(index: count)]
        if !writer.beginEntry(in: id) { writer.giveUp() }
        let nested = writer.openContainer(tag: .keyed)
        return KeyedEncodingContainer(CompactStreamingKeyedContainer<NestedKey>(writer: writer, id: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [CompactCodingKey(index: count)]
        if !writer.beginEntry(in: id) { writer.giveUp() }
        let nested = writer.openContainer(tag: .unkeyed)
        return CompactStreamingUnkeyedContainer(writer: writer, id: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        writer.giveUp()
        return CompactEncoderImplementation(codingPath: codingPath)
    }
}

private struct CompactStreamingSingleValue: SingleValueEncodingContainer {
    let encoder: CompactStreamingEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { try encoder.writeSingle(.null) }
    mutating func encode(_ value: Bool) throws { try encoder.writeSingle(.bool(value)) }
    mutating func encode(_ value: String) throws { try encoder.writeSingle(.string(value)) }
    mutating func encode(_ value: Double) throws { try encoder.writeSingle(.double(value)) }
    mutating func encode(_ value: Float) throws { try encoder.writeSingle(.float(value)) }
    mutating func encode(_ value: Int) throws { try encoder.writeSingle(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { try encoder.writeSingle(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { try encoder.writeSingle(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { try encoder.writeSingle(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { try encoder.writeSingle(.int(value)) }
    mutating func encode(_ value: UInt) throws { try encoder.writeSingle(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { try encoder.writeSingle(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt16) throws { try encoder.writeSingle(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt32) throws { try encoder.writeSingle(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt64) throws { try encoder.writeSingle(.uint(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.writeSingle(value) }
}
