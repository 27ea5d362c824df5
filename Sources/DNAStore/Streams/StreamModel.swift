import Foundation

/// A named stream: an ordered, append-only log per partition, stored in the DNA store.
/// Partitions cover the 32-bit hash space of record keys, each a range of it; a record with
/// a key goes to the open partition whose range holds the key's hash (`StreamKeyHash`).
public struct StreamName: Sendable, Hashable, CustomStringConvertible {
    /// The namespace the stream belongs to (an application or tenant).
    public var namespace: String
    /// The stream's name within its namespace.
    public var name: String

    /// The stream `name` of `namespace`, not checked until ``validate()``.
    public init(namespace: String = "default", name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`.
    public var description: String { "\(namespace)/\(name)" }

    /// Checks the namespace and the name: 1 to 64 bytes each of `A-Z a-z 0-9 _ . - :` (`invalidName` otherwise).
    public func validate() throws(StoreError) {
        try ActorID.validateSegment(namespace, what: "stream namespace")
        try ActorID.validateSegment(name, what: "stream name")
    }
}

/// How long a stream keeps records. Records a registered consumer has not read are kept
/// regardless (``StreamStore/registerConsumer(_:of:)``; a consumer stage registers itself),
/// unless ``dropUnconsumed``.
public struct StreamRetention: Sendable, Equatable {
    /// Records older than this may be deleted (`nil`: no age limit).
    public var maxAge: Duration?
    /// A partition's records beyond this many bytes, oldest first, may be deleted (`nil`: no limit).
    public var maxBytesPerPartition: Int64?
    /// Delete past the limits even what a consumer has not read yet: its checkpoint stays
    /// behind (``StreamStatus/droppedUnread(by:partition:)``), and a consumer stage moves on
    /// from the first record kept, logging and counting what it skipped.
    public var dropUnconsumed: Bool

    /// Retention by age and by size (`nil`: no limit of that kind); the defaults keep every record.
    public init(maxAge: Duration? = nil, maxBytesPerPartition: Int64? = nil, dropUnconsumed: Bool = false) {
        self.maxAge = maxAge
        self.maxBytesPerPartition = maxBytesPerPartition
        self.dropUnconsumed = dropUnconsumed
    }
}

/// The stable hash of a record key that places it in a partition: FNV-1a, 32 bits, over the
/// key's bytes (the same on every node and in every release).
@_spi(StoreEngine) public enum StreamKeyHash {
    public static func hash(_ key: [UInt8]) -> UInt32 {
        var hash: UInt32 = 0x811c_9dc5
        for byte in key {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    /// The key ranges of `count` partitions splitting the hash space evenly: partition `i`
    /// holds hashes `lo...hi`.
    public static func ranges(count: Int) -> [(lo: UInt32, hi: UInt32)] {
        let span = (UInt64(UInt32.max) + 1) / UInt64(count)
        return (0..<count).map { index in
            let lo = UInt64(index) * span
            let hi = index == count - 1 ? UInt64(UInt32.max) : lo + span - 1
            return (UInt32(lo), UInt32(hi))
        }
    }
}

/// One record to append: to the partition its key hashes to, or to `partition` if given.
public struct StreamAppendRecord: Sendable, Equatable {
    /// The record's key: its hash places the record in a partition.
    public var key: [UInt8]
    /// The record's value.
    public var value: [UInt8]
    /// The partition to append to; `nil`: the open one whose key range holds the key's hash.
    public var partition: Int?

    /// A record of `key` and `value`, to `partition` if given.
    public init(key: [UInt8], value: [UInt8], partition: Int? = nil) {
        self.key = key
        self.value = value
        self.partition = partition
    }

    /// The largest value a record may have: 1 MiB.
    public static let maxValueSize = 1 << 20
    /// The largest key a record may have: 1 KiB.
    public static let maxKeySize = 1024
}

/// Makes appends idempotent: a producer numbers its records 1, 2, 3, … in the order it
/// appends them (an append of n records takes n numbers from `firstSequence`); a record
/// whose number is not above the highest the stream has stored from this producer is a
/// repeat (a retried append) and is not stored again. Appends are atomic, so a retry
/// finds all of its records stored or none.
public struct StreamProducer: Sendable, Equatable {
    /// The producer's identity on the stream: 1 to 200 bytes.
    public var id: String
    /// The producer's number of the first record of this append; the others follow.
    public var firstSequence: Int64

    /// Producer `id`, whose append starts at number `firstSequence` (1 or more).
    public init(id: String, firstSequence: Int64) {
        self.id = id
        self.firstSequence = firstSequence
    }

    /// Producers made for one append each, when the caller gave none: the id starts with
    /// this prefix and the time it was made (16 hex digits of milliseconds), so the store
    /// forgets them ``oneAppendRetention`` later (a retry comes within seconds).
    public static let oneAppendPrefix = "dna.append/"
    /// How long after it was made the store forgets a producer made for one append.
    public static let oneAppendRetention: Duration = .seconds(3600)

    /// A producer for one append made at `milliseconds` (wall-clock time).
    public static func forOneAppend(atMilliseconds milliseconds: Int64) -> StreamProducer {
        StreamProducer(id: oneAppendBound(milliseconds) + "/" + String(UInt64.random(in: 0...UInt64.max), radix: 16), firstSequence: 1)
    }

    /// Ids of the producers for one append made before `milliseconds` sort below this (and
    /// at or above ``oneAppendPrefix``).
    public static func oneAppendBound(_ milliseconds: Int64) -> String {
        let digits = String(UInt64(max(0, milliseconds)), radix: 16)
        return oneAppendPrefix + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    /// Whether `id` is a producer for one append made before `milliseconds`.
    public static func isOneAppend(_ id: String, madeBefore milliseconds: Int64) -> Bool {
        id >= oneAppendPrefix && id < oneAppendBound(milliseconds)
    }
}

/// Where an appended record went.
public struct StreamPosition: Sendable, Equatable {
    /// The partition the record went to.
    public var partition: Int
    /// Its sequence in the partition; 0 for a ``duplicate`` (stored by an earlier attempt).
    public var sequence: Int64
    /// `true` if the producer had appended it before: not stored again.
    public var duplicate: Bool

    /// A record's place, as an engine reports it.
    public init(partition: Int, sequence: Int64, duplicate: Bool) {
        self.partition = partition
        self.sequence = sequence
        self.duplicate = duplicate
    }
}

/// A stored record.
public struct StreamRecord: Sendable, Equatable {
    /// The partition the record is in.
    public var partition: Int
    /// The record's number in its partition, from 1.
    public var sequence: Int64
    /// The record's key.
    public var key: [UInt8]
    /// The record's value.
    public var value: [UInt8]
    /// When it was appended, ms since 1970 by the store's clock.
    public var appendedMilliseconds: Int64

    /// A record as an engine read it.
    public init(partition: Int, sequence: Int64, key: [UInt8], value: [UInt8], appendedMilliseconds: Int64) {
        self.partition = partition
        self.sequence = sequence
        self.key = key
        self.value = value
        self.appendedMilliseconds = appendedMilliseconds
    }
}

/// A partition as ``StreamStore/streamStatus(_:)`` shows it.
public struct StreamPartitionStatus: Sendable, Equatable {
    /// The partition's id, never reused within the stream: `0` to `n - 1` for those it was
    /// created with, the next free ids for the children of splits and merges.
    public var partition: Int
    /// `open` takes appends; `closed` (split or merged) takes none, and ends at `nextSequence - 1`.
    public var isOpen: Bool
    /// The lowest key hash the partition holds.
    public var keyLow: UInt32
    /// The highest key hash the partition holds (inclusive).
    public var keyHigh: UInt32
    /// The oldest record kept (equal to `nextSequence` when empty).
    public var firstSequence: Int64
    /// The sequence the next record gets (records are numbered from 1).
    public var nextSequence: Int64
    /// The size of the records kept: their keys and values, in bytes.
    public var bytes: Int64
    /// The partitions it was split or merged from; none for those the stream was created with.
    public var parents: [Int]

    /// A partition's status, as an engine read it.
    public init(
        partition: Int, isOpen: Bool, keyLow: UInt32, keyHigh: UInt32, firstSequence: Int64, nextSequence: Int64, bytes: Int64,
        parents: [Int]
    ) {
        self.partition = partition
        self.isOpen = isOpen
        self.keyLow = keyLow
        self.keyHigh = keyHigh
        self.firstSequence = firstSequence
        self.nextSequence = nextSequence
        self.bytes = bytes
        self.parents = parents
    }

    /// Records kept.
    public var length: Int64 { nextSequence - firstSequence }
}

/// A stream as ``StreamStore/streamStatus(_:)`` shows it.
public struct StreamStatus: Sendable, Equatable {
    /// The stream.
    public var stream: StreamName
    /// The stream's retention.
    public var retention: StreamRetention
    /// The stream's partitions, closed ones too, by id.
    public var partitions: [StreamPartitionStatus]
    /// Each consumer's checkpoint per partition: the next sequence it reads.
    public var consumers: [String: [Int: Int64]]
    /// The partitions a consumer stage parked (its handler kept failing), with why.
    public var parked: [String: [Int: String]]

    /// A stream's status, as an engine read it; no consumers and nothing parked by default.
    public init(
        stream: StreamName, retention: StreamRetention, partitions: [StreamPartitionStatus], consumers: [String: [Int: Int64]] = [:],
        parked: [String: [Int: String]] = [:]
    ) {
        self.stream = stream
        self.retention = retention
        self.partitions = partitions
        self.consumers = consumers
        self.parked = parked
    }

    /// Records of `partition` that `consumer` has not read.
    public func lag(of consumer: String, partition: Int) -> Int64? {
        guard let status = partitions.first(where: { $0.partition == partition }) else { return nil }
        return status.nextSequence - (consumers[consumer]?[partition] ?? status.firstSequence)
    }

    /// Records of `partition` that retention deleted before `consumer` read them (a stream
    /// that drops unread records): a consumer stage skips them when it next reads, counting
    /// them in `dna_stage_records_dropped_total`.
    public func droppedUnread(by consumer: String, partition: Int) -> Int64 {
        guard let status = partitions.first(where: { $0.partition == partition }), let checkpoint = consumers[consumer]?[partition] else {
            return 0
        }
        return max(0, status.firstSequence - checkpoint)
    }
}

/// Retention, decided the same way by every engine for one partition: the sequence its
/// records are kept from.
@_spi(StoreEngine) public enum StreamRetentionRule {
    /// - Parameters:
    ///   - records: the partition's records from its first on: sequence, bytes, appended (ms);
    ///     all of them, or the oldest ones (a page) with `totalBytes`.
    ///   - totalBytes: the size of all the partition's records, when `records` are a page.
    ///   - protectedFrom: the lowest checkpoint of its consumers (`nil`: none).
    /// - Returns: the new first sequence (records below it go).
    public static func keepFrom(
        _ records: [(sequence: Int64, bytes: Int64, appended: Int64)], partition: StreamPartitionStatus, retention: StreamRetention,
        protectedFrom: Int64?, now: Int64, totalBytes: Int64? = nil
    ) -> Int64 {
        var cut = partition.firstSequence
        if let age = retention.maxAge?.milliseconds {
            for record in records where record.appended < now - age { cut = max(cut, record.sequence + 1) }
        }
        if let limit = retention.maxBytesPerPartition {
            var total = totalBytes ?? records.reduce(Int64(0)) { $0 + $1.bytes }
            for record in records where total > limit {
                total -= record.bytes
                cut = max(cut, record.sequence + 1)
            }
        }
        if let protectedFrom, !retention.dropUnconsumed { cut = min(cut, max(partition.firstSequence, protectedFrom)) }
        return min(cut, partition.nextSequence)
    }
}

extension StreamAppendRecord {
    /// Checks sizes; the partition (if given) is checked against the stream by the store.
    public func validate() throws(StoreError) {
        guard value.count <= Self.maxValueSize else {
            throw StoreError(.invalidArgument, "a record value of \(value.count) bytes is over the limit of \(Self.maxValueSize)")
        }
        guard key.count <= Self.maxKeySize else {
            throw StoreError(.invalidArgument, "a record key of \(key.count) bytes is over the limit of \(Self.maxKeySize)")
        }
    }
}

/// The rules every engine applies to an append, on the partitions as it read them: which
/// partition each record goes to, and whether the producer appended it already.
@_spi(StoreEngine) public enum StreamAppendRule {
    /// The partition of `record` among `partitions` (open ones take appends).
    public static func partition(
        of record: StreamAppendRecord, in partitions: [StreamPartitionStatus], stream: StreamName
    )
        throws(StoreError) -> Int
    {
        try record.validate()
        if let wanted = record.partition {
            guard let partition = partitions.first(where: { $0.partition == wanted }) else {
                throw StoreError(.notFound, "stream \(stream) has no partition \(wanted)")
            }
            guard partition.isOpen else {
                throw StoreError(
                    .invalidArgument,
                    "partition \(wanted) of stream \(stream) is closed (split or merged): append by key, or to its children")
            }
            return wanted
        }
        let hash = StreamKeyHash.hash(record.key)
        guard let partition = partitions.first(where: { $0.isOpen && $0.keyLow <= hash && hash <= $0.keyHigh }) else {
            throw StoreError(.unavailable, "stream \(stream) has no open partition for key hash \(hash)")
        }
        return partition.partition
    }

    /// An append decided: where each record goes, which are stored (the others repeat a
    /// producer's earlier append), the partitions' new next sequences and sizes, and the
    /// producer's new last number.
    public struct Plan: Sendable {
        public var positions: [StreamPosition]
        /// The records to insert, with their partition and sequence.
        public var inserts: [(partition: Int, sequence: Int64, record: StreamAppendRecord)]
        /// The partitions the append changed, as they are after it.
        public var changed: [StreamPartitionStatus]
        /// The producer's highest number stored after the append, if it rose.
        public var producerLast: Int64?
    }

    /// Plans an append of `records` to `partitions` (as read under the engine's lock), the
    /// producer having stored up to `lastStored` before.
    public static func plan(
        _ records: [StreamAppendRecord], in partitions: [StreamPartitionStatus], stream: StreamName, producer: StreamProducer?,
        lastStored: Int64
    ) throws(StoreError) -> Plan {
        var partitions = partitions
        let targets = try records.map { record throws(StoreError) in try partition(of: record, in: partitions, stream: stream) }
        var plan = Plan(positions: [], inserts: [], changed: [], producerLast: nil)
        plan.positions.reserveCapacity(records.count)
        for (index, record) in records.enumerated() {
            let partition = targets[index]
            if let producer, producer.firstSequence + Int64(index) <= lastStored {
                plan.positions.append(StreamPosition(partition: partition, sequence: 0, duplicate: true))
                continue
            }
            let slot = partitions.firstIndex { $0.partition == partition }!
            let sequence = partitions[slot].nextSequence
            partitions[slot].nextSequence += 1
            partitions[slot].bytes += Int64(record.key.count + record.value.count)
            plan.inserts.append((partition, sequence, record))
            plan.positions.append(StreamPosition(partition: partition, sequence: sequence, duplicate: false))
        }
        let touched = Set(plan.inserts.map(\.partition))
        plan.changed = partitions.filter { touched.contains($0.partition) }
        if let producer, !records.isEmpty {
            let highest = producer.firstSequence + Int64(records.count) - 1
            if highest > lastStored { plan.producerLast = highest }
        }
        return plan
    }

    public static func validate(_ producer: StreamProducer?) throws(StoreError) {
        guard let producer else { return }
        guard !producer.id.isEmpty, producer.id.utf8.count <= 200 else {
            throw StoreError(.invalidArgument, "a producer id is 1 to 200 bytes")
        }
        guard producer.firstSequence >= 1 else { throw StoreError(.invalidArgument, "producer sequences start at 1") }
    }
}

/// What every engine checks before a read.
@_spi(StoreEngine) public enum StreamReadRule {
    /// The most records one read returns.
    public static let maxLimit = 10_000

    public static func check(
        from sequence: Int64, limit: Int, in partition: StreamPartitionStatus, stream: StreamName
    )
        throws(StoreError)
    {
        guard limit >= 1, limit <= maxLimit else {
            throw StoreError(.invalidArgument, "a read returns 1 to \(maxLimit) records, asked for \(limit)")
        }
        guard sequence >= 1 else { throw StoreError(.invalidArgument, "sequences start at 1, asked for \(sequence)") }
        guard sequence <= partition.nextSequence else {
            throw StoreError(
                .invalidArgument,
                "partition \(partition.partition) of stream \(stream) ends at \(partition.nextSequence - 1); \(sequence) is past its end")
        }
        guard sequence >= partition.firstSequence else {
            throw StoreError(
                .invalidArgument,
                "partition \(partition.partition) of stream \(stream) keeps records from \(partition.firstSequence); \(sequence) was deleted by retention"
            )
        }
    }
}

/// Checks every engine makes before creating a stream.
@_spi(StoreEngine) public enum StreamRules {
    public static let maxPartitions = 1024

    public static func checkCreate(_ stream: StreamName, partitions: Int, retention: StreamRetention) throws(StoreError) {
        try stream.validate()
        guard partitions >= 1, partitions <= maxPartitions else {
            throw StoreError(.invalidArgument, "a stream has 1 to \(maxPartitions) partitions, asked for \(partitions)")
        }
        if let age = retention.maxAge, age <= .zero { throw StoreError(.invalidArgument, "retention by age must be more than 0") }
        if let bytes = retention.maxBytesPerPartition, bytes <= 0 {
            throw StoreError(.invalidArgument, "retention by size must be more than 0 bytes")
        }
    }
}

/// Splitting and merging partitions, decided the same way by every engine from the
/// partitions as it read them (under its lock): which partitions close and which open.
/// Partition ids are never reused: children take the next free ids. A closed partition
/// keeps its records and ends at its next sequence minus one; appends by key go to the
/// open child whose key range holds the key.
@_spi(StoreEngine) public enum StreamReshardRule {
    public struct Change: Sendable, Equatable {
        /// Partitions that close.
        public var closing: [Int]
        /// Partitions that open: id and key range.
        public var opening: [(partition: Int, lo: UInt32, hi: UInt32)]

        public static func == (a: Change, b: Change) -> Bool {
            a.closing == b.closing && a.opening.map(\.partition) == b.opening.map(\.partition)
                && a.opening.map(\.lo) == b.opening.map(\.lo) && a.opening.map(\.hi) == b.opening.map(\.hi)
        }
    }

    private static func open(
        _ id: Int, in partitions: [StreamPartitionStatus], stream: StreamName
    ) throws(StoreError)
        -> StreamPartitionStatus
    {
        guard let partition = partitions.first(where: { $0.partition == id }) else {
            throw StoreError(.notFound, "stream \(stream) has no partition \(id)")
        }
        guard partition.isOpen else {
            throw StoreError(.invalidArgument, "partition \(id) of stream \(stream) is closed already (it was split or merged)")
        }
        return partition
    }

    /// `partition` closes; two children take the lower and upper halves of its key range.
    public static func split(_ id: Int, in partitions: [StreamPartitionStatus], stream: StreamName) throws(StoreError) -> Change {
        let parent = try open(id, in: partitions, stream: stream)
        guard parent.keyLow < parent.keyHigh else {
            throw StoreError(.invalidArgument, "partition \(id) of stream \(stream) holds a single key hash: it cannot be split")
        }
        let middle = parent.keyLow + (parent.keyHigh - parent.keyLow) / 2
        let next = (partitions.map(\.partition).max() ?? -1) + 1
        return Change(closing: [id], opening: [(next, parent.keyLow, middle), (next + 1, middle + 1, parent.keyHigh)])
    }

    /// Two open partitions with adjacent key ranges close; one child takes both ranges.
    public static func merge(
        _ first: Int, _ second: Int, in partitions: [StreamPartitionStatus], stream: StreamName
    )
        throws(StoreError) -> Change
    {
        guard first != second else { throw StoreError(.invalidArgument, "a partition cannot be merged with itself") }
        let a = try open(first, in: partitions, stream: stream)
        let b = try open(second, in: partitions, stream: stream)
        let (low, high) = a.keyLow < b.keyLow ? (a, b) : (b, a)
        guard low.keyHigh &+ 1 == high.keyLow else {
            throw StoreError(
                .invalidArgument,
                "partitions \(first) and \(second) of stream \(stream) do not hold adjacent key ranges: they cannot be merged")
        }
        let next = (partitions.map(\.partition).max() ?? -1) + 1
        return Change(closing: [low.partition, high.partition], opening: [(next, low.keyLow, high.keyHigh)])
    }
}

/// A split or a merge (``StreamStore/reshard(_:_:)``).
public enum StreamReshard: Sendable, Equatable {
    /// Splits the open partition of this id in two.
    case split(Int)
    /// Merges two open partitions with adjacent key ranges into one.
    case merge(Int, Int)

    @_spi(StoreEngine) public func change(
        in partitions: [StreamPartitionStatus], stream: StreamName
    ) throws(StoreError) -> StreamReshardRule.Change {
        switch self {
        case .split(let partition): try StreamReshardRule.split(partition, in: partitions, stream: stream)
        case .merge(let first, let second): try StreamReshardRule.merge(first, second, in: partitions, stream: stream)
        }
    }
}

/// What every engine checks before recording a consumer's checkpoint.
@_spi(StoreEngine) public enum StreamProgressRule {
    public static func checkName(_ consumer: String) throws(StoreError) {
        guard !consumer.isEmpty, consumer.utf8.count <= 200 else { throw StoreError(.invalidArgument, "a consumer name is 1 to 200 bytes") }
    }

    public static func check(consumer: String, next: Int64, in partition: StreamPartitionStatus, stream: StreamName) throws(StoreError) {
        try checkName(consumer)
        guard next >= 1, next <= partition.nextSequence else {
            throw StoreError(
                .invalidArgument,
                "partition \(partition.partition) of stream \(stream) ends at \(partition.nextSequence - 1): a checkpoint at \(next) is past it"
            )
        }
    }
}

/// What a batch of a consumer stage does to streams, committed in the batch's own
/// transaction and only if its fence holds (``CommitBatch/streams``): so a stage's output
/// records, its input checkpoint and its state change together or not at all, and a
/// retried batch that was applied already appends nothing again.
public struct StreamEffects: Sendable, Equatable {
    /// Records to append to one stream.
    public struct Append: Sendable, Equatable {
        /// The stream appended to.
        public var stream: StreamName
        /// The records, appended atomically in this order.
        public var records: [StreamAppendRecord]
        /// Appends `records` to `stream`.
        public init(stream: StreamName, records: [StreamAppendRecord]) {
            self.stream = stream
            self.records = records
        }
    }

    /// A consumer's checkpoint on one partition (see
    /// ``StreamStore/commitProgress(consumer:stream:partition:next:)``).
    public struct Progress: Sendable, Equatable {
        /// The consumer whose checkpoint it is.
        public var consumer: String
        /// The stream read.
        public var stream: StreamName
        /// The partition read.
        public var partition: Int
        /// The next sequence the consumer reads.
        public var next: Int64
        /// Why the consumer parked the partition; `nil`: it runs.
        public var parked: String?
        /// The checkpoint `next` of `consumer` on a partition, parked with a reason or not.
        public init(consumer: String, stream: StreamName, partition: Int, next: Int64, parked: String? = nil) {
            self.consumer = consumer
            self.stream = stream
            self.partition = partition
            self.next = next
            self.parked = parked
        }
    }

    /// Appended in this order, each group all or none with the batch.
    public var appends: [Append]
    /// The checkpoints to record.
    public var progress: [Progress]

    /// Effects that append `appends` and record `progress`.
    public init(appends: [Append] = [], progress: [Progress] = []) {
        self.appends = appends
        self.progress = progress
    }

    /// No effect on any stream.
    public static let none = StreamEffects()
    /// Whether there is nothing to append or record.
    public var isEmpty: Bool { appends.isEmpty && progress.isEmpty }
}
