/// What a consumer stage reads: a partitioned, ordered source. DNA's own streams are one
/// (``StreamSource``), a PostgreSQL table ordered by a sequence column another
/// (`DNAPostgres`'s `PostgresTableSource`); a Kafka topic (partitions, offsets) or a Kinesis
/// stream (shards with their parent shards, sequence numbers) plug in the same way.
///
/// A consumer keeps its position per partition as its checkpoint and asks for the records
/// after it; a partition with parents is read only once its parents are read to their end
/// (unless the stage relaxes that order).
public protocol PartitionSource: Sendable {
    /// Where a record is in its partition, as the source counts (an offset, a sequence
    /// number): ordered, and stored in the consumer's checkpoint.
    associatedtype Position: Codable & Sendable & Comparable

    /// The source's partitions now: ids, parents, and whether each still takes records.
    func partitions() async throws -> [SourcePartition]
    /// The position before the first record a partition keeps.
    func start(of partition: String) async throws -> Position
    /// Up to `limit` records of `partition` after `position`, in order.
    func read(_ partition: String, after position: Position, limit: Int) async throws -> [SourceRecord<Position>]
    /// Registers a stage reading the source (its leader calls this at every sync): a
    /// source that deletes old records keeps, from then on, what the stage has not read.
    /// Nothing by default.
    func register(consumer: String) async throws
    /// What to commit with the batch that read `partition` up to `position`, so that the
    /// source keeps only what the stage has not read (a DNA stream's checkpoint); `nil` by
    /// default.
    func progress(of consumer: String, partition: String, after position: Position) -> StreamEffects.Progress?
}

extension PartitionSource {
    /// Does nothing (for sources that keep their records regardless of readers).
    public func register(consumer: String) async throws {}
    /// `nil` (for sources that keep no checkpoints of their readers).
    public func progress(of consumer: String, partition: String, after position: Position) -> StreamEffects.Progress? { nil }
}

/// A partition of a ``PartitionSource``.
public struct SourcePartition: Sendable, Equatable, Hashable {
    /// The partition's id in its source.
    public var id: String
    /// The partitions it continues (a split's parent, a merge's two): read them first.
    public var parents: [String]
    /// `false` once it takes no more records (split, merged, or a closed shard): read to
    /// its end, it is done.
    public var isOpen: Bool

    /// A partition `id`, open and without parents by default.
    public init(id: String, parents: [String] = [], isOpen: Bool = true) {
        self.id = id
        self.parents = parents
        self.isOpen = isOpen
    }
}

/// A record read from a ``PartitionSource``.
public struct SourceRecord<Position: Sendable>: Sendable {
    /// Where the record is in its partition.
    public var position: Position
    /// The record's key.
    public var key: [UInt8]
    /// The record's value.
    public var value: [UInt8]

    /// A record at `position`.
    public init(position: Position, key: [UInt8], value: [UInt8]) {
        self.position = position
        self.key = key
        self.value = value
    }
}

/// A DNA stream as a ``PartitionSource``: partition ids are the stream's partition numbers,
/// positions its sequences.
public struct StreamSource: PartitionSource {
    /// A record's sequence in its partition.
    public typealias Position = Int64

    /// The store that holds the stream.
    public let store: any StreamStore
    /// The stream read.
    public let stream: StreamName

    /// The stream `stream` of `store`.
    public init(store: any StreamStore, stream: StreamName) {
        self.store = store
        self.stream = stream
    }

    /// The stream's partitions, closed ones too: ids are their numbers as text (`"0"`, `"1"`, …).
    public func partitions() async throws -> [SourcePartition] {
        try await store.streamStatus(stream).partitions.map {
            SourcePartition(id: String($0.partition), parents: $0.parents.map(String.init), isOpen: $0.isOpen)
        }
    }

    /// The sequence before the partition's first record kept.
    ///
    /// - Throws: ``StoreError/Code/notFound`` for a partition the stream does not have.
    public func start(of partition: String) async throws -> Int64 {
        let number = try Self.number(partition, of: stream)
        guard let status = try await store.streamStatus(stream).partitions.first(where: { $0.partition == number }) else {
            throw StoreError(.notFound, "stream \(stream) has no partition \(partition)")
        }
        return status.firstSequence - 1
    }

    /// Up to `limit` records of the partition after `position`, in order
    /// (``StreamStore/readStream(_:partition:from:limit:)``).
    public func read(_ partition: String, after position: Int64, limit: Int) async throws -> [SourceRecord<Int64>] {
        try await store.readStream(stream, partition: try Self.number(partition, of: stream), from: position + 1, limit: limit).map {
            SourceRecord(position: $0.sequence, key: $0.key, value: $0.value)
        }
    }

    /// Registers the stage on the stream (``StreamStore/registerConsumer(_:of:)``) when it
    /// lacks a checkpoint on some partition.
    public func register(consumer: String) async throws {
        let status = try await store.streamStatus(stream)
        guard status.partitions.contains(where: { status.consumers[consumer]?[$0.partition] == nil }) else { return }
        _ = try await store.registerConsumer(consumer, of: stream)
    }

    /// The stream checkpoint of a stage that read up to `position`.
    public func progress(of consumer: String, partition: String, after position: Int64) -> StreamEffects.Progress? {
        guard let number = try? Self.number(partition, of: stream) else { return nil }
        return StreamEffects.Progress(consumer: consumer, stream: stream, partition: number, next: position + 1)
    }

    private static func number(_ partition: String, of stream: StreamName) throws(StoreError) -> Int {
        guard let number = Int(partition), number >= 0 else {
            throw StoreError(.notFound, "stream \(stream) has no partition '\(partition)' (its partitions are numbered)")
        }
        return number
    }
}
