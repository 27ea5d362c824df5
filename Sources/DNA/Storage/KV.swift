/// A key-value storage module: `Codable` keys and values, kept in memory for the activation
/// and in the store, listed in key order.
///
/// Reads see every write staged before them, also in the same batch; all writes of a batch,
/// across all of the actor's modules, commit in one transaction. Keys sort by their encoded
/// bytes: UTF-8 for `String`, numerically for integers (see the README).
///
/// Two keys are the same key exactly when their encodings are the same bytes, in memory as
/// in the store: `"café"` precomposed (NFC) and decomposed (NFD) are two keys, as are
/// `0.0` and `-0.0`, though `==` calls them equal. Normalise keys yourself if your
/// application wants them merged.
public final class KV<Key: Hashable & Codable & Sendable, Value: Codable & Sendable>: UndoableModule {
    /// The default number of entries ``list(after:limit:)`` returns.
    public static var defaultListLimit: Int { 100 }
    /// The most entries one ``list(after:limit:)`` may return.
    public static var maxListLimit: Int { 1000 }

    @usableFromInline let name: String
    @usableFromInline let log: WriteLog
    /// By the identity of the key (its encoded bytes), not by its `==`.
    @usableFromInline var entries: [KeyIdentity: Value]
    /// Previous values of the keys written in this batch, and where the current message's
    /// entries begin.
    @usableFromInline var undoEntries: [(key: Key, identity: KeyIdentity, previous: Value?)] = []
    @usableFromInline var undoMark = 0
    @usableFromInline var undoMessageNumber = -1
    @usableFromInline var index: SortedKeyIndex<Key>?

    init(name: String, rows: ArraySlice<ModuleRow>, log: WriteLog) throws(DNAError) {
        self.name = name
        self.log = log
        var entries: [KeyIdentity: Value] = [:]
        entries.reserveCapacity(rows.count)
        for row in rows {
            let key = try StorageCoding.decode(Key.self, from: row.key)
            entries[try StorageCoding.identity(key)] = try StorageCoding.decode(Value.self, from: row.value)
        }
        self.entries = entries
    }

    /// The number of keys.
    public var count: Int { entries.count }

    /// The value stored for `key`, including writes not yet committed.
    @inlinable
    public func read(_ key: Key) -> Value? {
        // A key that cannot be encoded was never stored.
        guard let identity = try? StorageCoding.identity(key) else { return nil }
        return entries[identity]
    }

    /// Stores `value` for `key`; committed with the current batch.
    /// - Throws: ``DNAError/Code/encodingFailed`` if the key or value cannot be encoded.
    @inlinable
    public func write(_ value: Value, for key: Key) throws(DNAError) {
        let operation = StorageOperation(
            module: name, key: try StorageCoding.encode(key), value: try StorageCoding.encode(value))
        let identity = try StorageCoding.identity(key)
        let previous = entries.updateValue(value, forKey: identity)
        if previous == nil { index?.inserted(key, identity: identity, encoded: operation.key) }
        record(key, identity, previous, operation)
    }

    /// Removes `key`; committed with the current batch.
    @inlinable
    public func delete(_ key: Key) throws(DNAError) {
        let identity = try StorageCoding.identity(key)
        guard let previous = entries.removeValue(forKey: identity) else { return }
        index?.removed()
        record(key, identity, previous, StorageOperation(module: name, key: try StorageCoding.encode(key), value: nil))
    }

    @inlinable
    func record(_ key: Key, _ identity: KeyIdentity, _ previous: Value?, _ operation: StorageOperation) {
        if undoMessageNumber != log.message {
            undoMessageNumber = log.message
            log.touched(self, firstInBatch: undoEntries.isEmpty)
            undoMark = undoEntries.count
        }
        undoEntries.append((key, identity, previous))
        log.append(operation)
    }

    /// Up to `limit` entries in key order, starting after `after` when given.
    /// - Throws: ``DNAError/Code/invalidArgument`` if `limit` is not in 1...``maxListLimit``.
    public func list(after: Key? = nil, limit: Int = defaultListLimit) throws(DNAError) -> [(key: Key, value: Value)] {
        try list(prefix: [], after: after, limit: limit)
    }

    func list(prefix: [UInt8], after: Key?, limit: Int) throws(DNAError) -> [(key: Key, value: Value)] {
        guard (1...Self.maxListLimit).contains(limit) else {
            throw DNAError(.invalidArgument, "list limit \(limit) is out of range 1...\(Self.maxListLimit)")
        }
        if index == nil {
            var built = SortedKeyIndex<Key>()
            for identity in entries.keys {
                let (key, encoded) = try Self.key(of: identity)
                built.inserted(key, identity: identity, encoded: encoded)
            }
            index = built
        }
        let afterBytes = try after.map { key throws(DNAError) in try StorageCoding.encode(key) }
        let entries = self.entries
        let found = index!.keys(prefix: prefix, after: afterBytes, limit: limit) { entries[$0] != nil }
        return found.map { ($0.key, entries[$0.identity]!) }
    }

    /// The key and its encoding, from its identity (which holds one or the other).
    private static func key(of identity: KeyIdentity) throws(DNAError) -> (Key, [UInt8]) {
        switch identity {
        case .utf8(let string): return (string as! Key, Array(string.utf8))
        case .integer(let bits):
            let encoded = withUnsafeBytes(of: bits.bigEndian) { Array($0) }
            return (try StorageCoding.decode(Key.self, from: encoded), encoded)
        case .bytes(let encoded): return (try StorageCoding.decode(Key.self, from: encoded), encoded)
        }
    }

    @usableFromInline
    func undoMessage() {
        for (key, identity, previous) in undoEntries[undoMark...].reversed() {
            if let previous {
                if entries.updateValue(previous, forKey: identity) == nil, let encoded = try? StorageCoding.encode(key) {
                    index?.inserted(key, identity: identity, encoded: encoded)
                }
            } else {
                entries.removeValue(forKey: identity)
                index?.removed()
            }
        }
        undoEntries.removeSubrange(undoMark...)
        undoMessageNumber = -1
    }

    @usableFromInline
    func forgetUndo() {
        undoEntries.removeAll(keepingCapacity: true)
        undoMessageNumber = -1
    }
}

extension KV where Key == String {
    /// Up to `limit` entries whose keys start with `prefix`, in key order, starting after
    /// `after` when given.
    public func list(prefix: String, after: String? = nil, limit: Int = defaultListLimit) throws(DNAError) -> [(key: Key, value: Value)] {
        try list(prefix: Array(prefix.utf8), after: after, limit: limit)
    }
}

/// The keys of a module in encoded-byte order, built on the first `list` and kept up to
/// date cheaply: new keys are sorted in on the next `list`; removed keys are skipped and
/// swept out when they pile up.
@usableFromInline
struct SortedKeyIndex<Key: Hashable> {
    @usableFromInline
    struct Entry {
        var encoded: [UInt8]
        var key: Key
        var identity: KeyIdentity
    }

    private var sorted: [Entry] = []
    private var added: [Entry] = []
    private var removedSinceSweep = 0

    @usableFromInline
    mutating func inserted(_ key: Key, identity: KeyIdentity, encoded: [UInt8]) {
        added.append(Entry(encoded: encoded, key: key, identity: identity))
    }

    @usableFromInline
    mutating func removed() { removedSinceSweep += 1 }

    mutating func keys(prefix: [UInt8], after: [UInt8]?, limit: Int, isPresent: (KeyIdentity) -> Bool) -> [Entry] {
        if !added.isEmpty || removedSinceSweep > sorted.count / 2 {
            added.sort { $0.encoded.lexicographicallyPrecedes($1.encoded) }
            var merged: [Entry] = []
            merged.reserveCapacity(sorted.count + added.count)
            var i = 0
            var j = 0
            while i < sorted.count || j < added.count {
                let next: Entry
                if j == added.count || (i < sorted.count && !added[j].encoded.lexicographicallyPrecedes(sorted[i].encoded)) {
                    next = sorted[i]
                    i += 1
                } else {
                    next = added[j]
                    j += 1
                }
                if isPresent(next.identity), merged.last?.encoded != next.encoded { merged.append(next) }
            }
            sorted = merged
            added = []
            removedSinceSweep = 0
        }
        // First position at or after the prefix, and strictly after `after`.
        var low = 0
        var high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            let encoded = sorted[mid].encoded
            let before = encoded.lexicographicallyPrecedes(prefix) || (after.map { !$0.lexicographicallyPrecedes(encoded) } ?? false)
            if before { low = mid + 1 } else { high = mid }
        }
        var result: [Entry] = []
        var position = low
        while position < sorted.count && result.count < limit {
            let entry = sorted[position]
            guard entry.encoded.starts(with: prefix) else { break }
            if isPresent(entry.identity) { result.append(entry) }
            position += 1
        }
        return result
    }
}
