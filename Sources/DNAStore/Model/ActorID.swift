/// The name of one durable actor: unique across the cluster.
///
/// A name has three parts: a `namespace` (an application or tenant), the actor's `kind`
/// (its type, see `DurableActor.kind`) and its `key` (which one of that kind).
///
/// Limits, checked by ``validate()``:
/// - `namespace` and `kind`: 1 to ``maxSegmentBytes`` bytes of `A-Z a-z 0-9 _ . - :`.
/// - `key`: 1 to ``maxKeyBytes`` bytes of UTF-8, without control characters.
///
/// Names are identified by their UTF-8 bytes, in memory as in the store and on the wire:
/// `"café"` spelled with a precomposed `é` (NFC) and with `e` and a combining accent (NFD)
/// are two names, although Swift's `==` on `String` calls them equal. Normalise keys
/// yourself if your application wants them to be one.
public struct ActorID: Hashable, Sendable, CustomStringConvertible {
    /// The longest namespace or kind, in UTF-8 bytes.
    public static let maxSegmentBytes = 64
    /// The longest key, in UTF-8 bytes.
    public static let maxKeyBytes = 512

    /// The application or tenant the actor belongs to.
    public var namespace: String
    /// The actor's type (see `DurableActor.kind`).
    public var kind: String
    /// Which actor of its kind.
    public var key: String

    /// A name of these parts, not checked until ``validate()``.
    public init(namespace: String, kind: String, key: String) {
        self.namespace = namespace
        self.kind = kind
        self.key = key
    }

    /// `namespace/kind/key`.
    public var description: String { "\(namespace)/\(kind)/\(key)" }

    /// Byte for byte (see above), not by `String`'s canonical equivalence.
    public static func == (lhs: ActorID, rhs: ActorID) -> Bool {
        func same(_ a: String, _ b: String) -> Bool {
            var a = a
            var b = b
            return a.withUTF8 { x in b.withUTF8 { y in x.elementsEqual(y) } }
        }
        return same(lhs.key, rhs.key) && same(lhs.kind, rhs.kind) && same(lhs.namespace, rhs.namespace)
    }

    /// Hashes the parts' UTF-8 bytes, as `==` compares them.
    public func hash(into hasher: inout Hasher) {
        func combine(_ part: String) {
            var part = part
            part.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
            hasher.combine(0xFF as UInt8)  // not a UTF-8 byte: separates the parts
        }
        combine(namespace)
        combine(kind)
        combine(key)
    }

    /// Checks the limits above; throws ``StoreError/Code/invalidName`` with the reason.
    public func validate() throws(StoreError) {
        try Self.validateSegment(namespace, what: "namespace")
        try Self.validateSegment(kind, what: "kind")
        let bytes = key.utf8.count
        guard bytes > 0 else {
            throw StoreError(.invalidName, "actor key is empty (in \(namespace)/\(kind))")
        }
        guard bytes <= Self.maxKeyBytes else {
            throw StoreError(.invalidName, "actor key is \(bytes) bytes; the maximum is \(Self.maxKeyBytes)")
        }
        if key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw StoreError(.invalidName, "actor key contains a control character")
        }
    }

    /// Checks a namespace or kind: 1 to ``maxSegmentBytes`` bytes of `A-Z a-z 0-9 _ . - :`;
    /// throws ``StoreError/Code/invalidName`` with the reason, calling the value `what`.
    public static func validateSegment(_ value: String, what: String) throws(StoreError) {
        let bytes = value.utf8.count
        guard bytes > 0 else { throw StoreError(.invalidName, "actor \(what) is empty") }
        guard bytes <= maxSegmentBytes else {
            throw StoreError(.invalidName, "actor \(what) is \(bytes) bytes; the maximum is \(maxSegmentBytes)")
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "-"), UInt8(ascii: ":"):
                continue
            default:
                throw StoreError(.invalidName, "actor \(what) '\(value)' may hold only A-Z a-z 0-9 _ . - :")
            }
        }
    }
}
