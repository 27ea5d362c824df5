@_spi(StoreEngine) public import DNAStore
public import DNAStore
import Logging
import NIOCore
import PostgresNIO

/// Streams on PostgreSQL: each operation is one transaction; an append locks its stream's
/// partition rows (appends to one stream are serialised; reads are not). Every transaction
/// that locks partition rows takes them in (stream, partition) order; a trim holds one
/// partition's for one page of deletes.
extension PostgresStore {
    private static let now = PostgresSchema.nowMilliseconds

    private static func streamID(_ stream: StreamName, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        for try await id in try await connection.query(
            "SELECT stream_id FROM dna_streams WHERE namespace = \(stream.namespace) AND name = \(stream.name)", logger: logger
        ).decode(Int64.self) {
            return id
        }
        throw StoreError(.notFound, "no stream \(stream)")
    }

    private static func partitions(
        of id: Int64, lock: Bool, on connection: PostgresConnection, logger: Logger
    ) async throws
        -> [StreamPartitionStatus]
    {
        var result: [StreamPartitionStatus] = []
        let query: PostgresQuery =
            lock
            ? """
            SELECT partition_id, state, key_lo, key_hi, first_seq, next_seq, bytes FROM dna_partitions
            WHERE stream_id = \(id) ORDER BY partition_id FOR UPDATE
            """
            : """
            SELECT partition_id, state, key_lo, key_hi, first_seq, next_seq, bytes FROM dna_partitions
            WHERE stream_id = \(id) ORDER BY partition_id
            """
        for try await (partition, state, lo, hi, first, next, bytes) in try await connection.query(query, logger: logger).decode(
            (Int64, String, Int64, Int64, Int64, Int64, Int64).self)
        {
            result.append(
                StreamPartitionStatus(
                    partition: Int(partition), isOpen: state == "open", keyLow: UInt32(lo), keyHigh: UInt32(hi), firstSequence: first,
                    nextSequence: next, bytes: bytes, parents: []))
        }
        for try await (parent, child) in try await connection.query(
            "SELECT parent_id, child_id FROM dna_partition_edges WHERE stream_id = \(id) ORDER BY parent_id", logger: logger
        ).decode((Int64, Int64).self) {
            if let index = result.firstIndex(where: { $0.partition == Int(child) }) { result[index].parents.append(Int(parent)) }
        }
        return result
    }

    /// Creates a stream of `partitions` partitions (1 to 1,024) that split the key-hash space evenly.
    ///
    /// - Throws: `StoreError.Code.invalidArgument` if the stream exists or a setting is out
    ///   of range; `StoreError.Code.invalidName` for a stream name that
    ///   `StreamName.validate()` refuses.
    public func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) async throws(StoreError) {
        try StreamRules.checkCreate(stream, partitions: partitions, retention: retention)
        let logger = configuration.logger
        try await inTransaction("creating stream \(stream)") { connection in
            var created: Int64?
            for try await id in try await connection.query(
                """
                INSERT INTO dna_streams (namespace, name, retention_ms, retention_bytes, drop_unconsumed, created_ms)
                VALUES (\(stream.namespace), \(stream.name), \(retention.maxAge?.milliseconds), \(retention.maxBytesPerPartition),
                    \(retention.dropUnconsumed), \(unescaped: Self.now))
                ON CONFLICT (namespace, name) DO NOTHING RETURNING stream_id
                """, logger: logger
            ).decode(Int64.self) {
                created = id
            }
            guard let id = created else { throw StoreError(.invalidArgument, "stream \(stream) exists already") }
            for (index, range) in StreamKeyHash.ranges(count: partitions).enumerated() {
                try await connection.run(
                    """
                    INSERT INTO dna_partitions (stream_id, partition_id, state, key_lo, key_hi)
                    VALUES (\(id), \(Int64(index)), 'open', \(Int64(range.lo)), \(Int64(range.hi)))
                    """, logger: logger)
            }
        }
    }

    /// Appends `records` atomically, in one transaction that locks the stream's partitions
    /// (appends to one stream are serialised).
    ///
    /// - Throws: `StoreError.Code.notFound` for a missing stream or partition,
    ///   `StoreError.Code.invalidArgument` for a record over the size limits, a closed
    ///   partition named or a bad producer; `StoreError.Code.outcomeUnknown` if the answer was
    ///   lost once the append was sent: the records may be stored (a retry with the same
    ///   producer and sequences stores them once).
    public func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        try stream.validate()
        try StreamAppendRule.validate(producer)
        let logger = configuration.logger
        // A lost answer may hide records that were stored: without a producer, a retry
        // would store them again, so the caller is told the outcome is unknown.
        return try await inTransaction("appending to stream \(stream)", outcomeUnknownOnceSent: true) { connection in
            try await Self.append(records, to: stream, producer: producer, on: connection, logger: logger)
        }
    }

    /// An append inside the caller's transaction: the stream's partition rows are locked
    /// until it ends, so sequences are given in commit order.
    static func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?, on connection: PostgresConnection, logger: Logger
    ) async throws -> [StreamPosition] {
        // The stream's id and its partitions, locked, in one round trip (parents are not
        // needed to place records).
        var id: Int64?
        var partitions: [StreamPartitionStatus] = []
        for try await (stream, partition, state, lo, hi, first, next, bytes) in try await connection.query(
            """
            SELECT p.stream_id, p.partition_id, p.state, p.key_lo, p.key_hi, p.first_seq, p.next_seq, p.bytes
            FROM dna_partitions p JOIN dna_streams s ON s.stream_id = p.stream_id
            WHERE s.namespace = \(stream.namespace) AND s.name = \(stream.name) ORDER BY p.partition_id FOR UPDATE OF p
            """, logger: logger
        ).decode((Int64, Int64, String, Int64, Int64, Int64, Int64, Int64).self) {
            id = stream
            partitions.append(
                StreamPartitionStatus(
                    partition: Int(partition), isOpen: state == "open", keyLow: UInt32(lo), keyHigh: UInt32(hi), firstSequence: first,
                    nextSequence: next, bytes: bytes, parents: []))
        }
        guard let id else { throw StoreError(.notFound, "no stream \(stream)") }
        var lastStored: Int64 = 0
        if let producer {
            for try await last in try await connection.query(
                "SELECT last_seq FROM dna_producers WHERE stream_id = \(id) AND producer_id = \(producer.id) FOR UPDATE", logger: logger
            ).decode(Int64.self) {
                lastStored = last
            }
        }
        let plan = try StreamAppendRule.plan(records, in: partitions, stream: stream, producer: producer, lastStored: lastStored)
        if !plan.inserts.isEmpty {
            // One statement for the lot: a stage's batch appends hundreds.
            let partitionIDs = plan.inserts.map { Int64($0.partition) }
            let sequences = plan.inserts.map(\.sequence)
            let keys = plan.inserts.map { ByteBuffer(bytes: $0.record.key) }
            let values = plan.inserts.map { ByteBuffer(bytes: $0.record.value) }
            try await connection.run(
                """
                INSERT INTO dna_records (stream_id, partition_id, seq, key, value, appended_ms)
                SELECT \(id), p, s, k, v, \(unescaped: now)
                FROM unnest(\(partitionIDs)::BIGINT[], \(sequences)::BIGINT[], \(keys)::BYTEA[], \(values)::BYTEA[]) AS r(p, s, k, v)
                """, logger: logger)
        }
        if !plan.changed.isEmpty {
            let changedIDs = plan.changed.map { Int64($0.partition) }
            let nextSequences = plan.changed.map(\.nextSequence)
            let sizes = plan.changed.map(\.bytes)
            try await connection.run(
                """
                UPDATE dna_partitions AS p SET next_seq = u.n, bytes = u.b
                FROM unnest(\(changedIDs)::BIGINT[], \(nextSequences)::BIGINT[], \(sizes)::BIGINT[]) AS u(id, n, b)
                WHERE p.stream_id = \(id) AND p.partition_id = u.id
                """, logger: logger)
        }
        if let producer, let highest = plan.producerLast {
            try await connection.run(
                """
                INSERT INTO dna_producers (stream_id, producer_id, last_seq) VALUES (\(id), \(producer.id), \(highest))
                ON CONFLICT (stream_id, producer_id) DO UPDATE SET last_seq = excluded.last_seq
                """, logger: logger)
        }
        return plan.positions
    }

    /// Locks the partitions of `streams` in the one order every transaction takes them,
    /// (stream, partition): two batches appending to the same streams in different orders
    /// would otherwise each hold what the other waits for.
    static func lockPartitions(of streams: [StreamName], on connection: PostgresConnection, logger: Logger) async throws {
        guard Set(streams).count > 1 else { return }  // an append locks one stream's in order itself
        try await connection.run(
            """
            SELECT 1 FROM dna_partitions p JOIN dna_streams s ON s.stream_id = p.stream_id
            JOIN unnest(\(streams.map(\.namespace))::TEXT[], \(streams.map(\.name))::TEXT[]) AS w(namespace, name)
                ON s.namespace = w.namespace AND s.name = w.name
            ORDER BY p.stream_id, p.partition_id FOR UPDATE OF p
            """, logger: logger)
    }

    /// A batch's stream effects inside its commit's transaction (after its fence matched, and
    /// with the partitions of every stream it appends to locked: ``lockPartitions(of:on:logger:)``).
    static func apply(_ effects: StreamEffects, on connection: PostgresConnection, logger: Logger) async throws {
        for append in effects.appends {
            _ = try await Self.append(append.records, to: append.stream, producer: nil, on: connection, logger: logger)
        }
        for progress in effects.progress {
            try await recordProgress(
                consumer: progress.consumer, stream: progress.stream, partition: progress.partition, next: progress.next,
                parked: progress.parked, on: connection, logger: logger)
        }
    }

    /// Up to `limit` records (1 to 10,000) of a partition from `sequence` on, in order.
    ///
    /// - Throws: `StoreError.Code.notFound`; `StoreError.Code.invalidArgument` for a sequence
    ///   past the partition's end or before what retention kept, also when a trim deleted
    ///   it during the read.
    public func readStream(
        _ stream: StreamName, partition: Int, from sequence: Int64, limit: Int
    ) async throws(StoreError)
        -> [StreamRecord]
    {
        try stream.validate()
        let logger = configuration.logger
        return try await withConnection("reading stream \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            guard
                let status = try await Self.partitions(of: id, lock: false, on: connection, logger: logger).first(where: {
                    $0.partition == partition
                })
            else { throw StoreError(.notFound, "stream \(stream) has no partition \(partition)") }
            try StreamReadRule.check(from: sequence, limit: limit, in: status, stream: stream)
            var records: [StreamRecord] = []
            for try await (seq, key, value, appended) in try await connection.query(
                """
                SELECT seq, key, value, appended_ms FROM dna_records
                WHERE stream_id = \(id) AND partition_id = \(Int64(partition)) AND seq >= \(sequence) ORDER BY seq LIMIT \(Int64(limit))
                """, logger: logger
            ).decode((Int64, ByteBuffer, ByteBuffer, Int64).self) {
                records.append(
                    StreamRecord(
                        partition: partition, sequence: seq, key: Array(key.readableBytesView), value: Array(value.readableBytesView),
                        appendedMilliseconds: appended))
            }
            // Sequences have no holes: records missing at the front were deleted by a trim
            // between the check and the read (two statements, two snapshots). The reader is
            // told so, as by the check, rather than skipping them unawares.
            let firstRead = records.first?.sequence ?? status.nextSequence
            if sequence < firstRead {
                var trimmed = status
                trimmed.firstSequence = firstRead
                try StreamReadRule.check(from: sequence, limit: limit, in: trimmed, stream: stream)
            }
            return records
        }
    }

    private static func consumers(of id: Int64, on connection: PostgresConnection, logger: Logger) async throws -> [String: [Int: Int64]] {
        var result: [String: [Int: Int64]] = [:]
        for try await (consumer, partition, next) in try await connection.query(
            "SELECT consumer, partition_id, next_seq FROM dna_stream_progress WHERE stream_id = \(id)", logger: logger
        ).decode((String, Int64, Int64).self) {
            result[consumer, default: [:]][Int(partition)] = next
        }
        return result
    }

    /// Records `consumer`'s checkpoint on a partition: it has read up to `next` (exclusive).
    public func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64) async throws(StoreError) {
        try stream.validate()
        let logger = configuration.logger
        try await inTransaction("recording the progress of \(consumer) on \(stream)") { connection in
            try await Self.recordProgress(
                consumer: consumer, stream: stream, partition: partition, next: next, parked: nil, on: connection, logger: logger)
        }
    }

    private static func recordProgress(
        consumer: String, stream: StreamName, partition: Int, next: Int64, parked: String?, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        // One statement when the checkpoint is valid (a stage's every commit has one); the
        // checks again, for a precise error, when it wrote nothing.
        if !consumer.isEmpty, consumer.utf8.count <= 200 {
            let written = try await connection.query(
                """
                INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms, parked)
                SELECT p.stream_id, p.partition_id, \(consumer), \(next), \(unescaped: now), \(parked)
                FROM dna_partitions p JOIN dna_streams s ON s.stream_id = p.stream_id
                WHERE s.namespace = \(stream.namespace) AND s.name = \(stream.name) AND p.partition_id = \(Int64(partition))
                    AND \(next) >= 1 AND \(next) <= p.next_seq
                ON CONFLICT (stream_id, partition_id, consumer)
                DO UPDATE SET next_seq = excluded.next_seq, updated_ms = excluded.updated_ms, parked = excluded.parked
                RETURNING 1
                """, logger: logger
            ).collect().count
            if written == 1 { return }
        }
        let id = try await streamID(stream, on: connection, logger: logger)
        guard
            let status = try await partitions(of: id, lock: false, on: connection, logger: logger).first(where: {
                $0.partition == partition
            })
        else { throw StoreError(.notFound, "stream \(stream) has no partition \(partition)") }
        try StreamProgressRule.check(consumer: consumer, next: next, in: status, stream: stream)
        throw StoreError(.invalidArgument, "the checkpoint of \(consumer) on \(stream) partition \(partition) was not recorded")
    }

    /// Lets the consumer's parked partitions of the stream (or only `partition`) run again;
    /// returns how many were parked.
    public func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) async throws(StoreError) -> Int {
        try stream.validate()
        let logger = configuration.logger
        let only = partition.map(Int64.init)
        return try await inTransaction("resuming consumer \(consumer) of \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            return try await connection.query(
                """
                UPDATE dna_stream_progress SET parked = NULL
                WHERE stream_id = \(id) AND consumer = \(consumer) AND parked IS NOT NULL
                    AND (\(only)::BIGINT IS NULL OR partition_id = \(only)::BIGINT)
                RETURNING 1
                """, logger: logger
            ).collect().count
        }
    }

    private static func parkedConsumers(
        of id: Int64, on connection: PostgresConnection, logger: Logger
    ) async throws -> [String: [Int: String]] {
        var result: [String: [Int: String]] = [:]
        for try await (consumer, partition, parked) in try await connection.query(
            "SELECT consumer, partition_id, parked FROM dna_stream_progress WHERE stream_id = \(id) AND parked IS NOT NULL", logger: logger
        ).decode((String, Int64, String).self) {
            result[consumer, default: [:]][Int(partition)] = parked
        }
        return result
    }

    /// Gives `consumer` a checkpoint at the start of every partition it has none on;
    /// returns how many it made.
    public func registerConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        try StreamProgressRule.checkName(consumer)
        let logger = configuration.logger
        return try await inTransaction("registering consumer \(consumer) of \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            // Under the partitions' lock, as a split or a trim takes it: a row made here is
            // seen by the next, and no partition appears or is trimmed meanwhile.
            _ = try await Self.partitions(of: id, lock: true, on: connection, logger: logger)
            return try await connection.query(
                """
                INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms)
                SELECT stream_id, partition_id, \(consumer), first_seq, \(unescaped: Self.now) FROM dna_partitions WHERE stream_id = \(id)
                ON CONFLICT (stream_id, partition_id, consumer) DO NOTHING
                RETURNING 1
                """, logger: logger
            ).collect().count
        }
    }

    /// Deletes `consumer`'s checkpoints on the stream; returns how many there were.
    public func forgetConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        let logger = configuration.logger
        return try await inTransaction("forgetting consumer \(consumer) of \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            return try await connection.query(
                "DELETE FROM dna_stream_progress WHERE stream_id = \(id) AND consumer = \(consumer) RETURNING 1", logger: logger
            ).collect().count
        }
    }

    /// Records deleted by one trim transaction: each holds its partition's lock only as long
    /// as it takes to delete these (appends to the partition wait meanwhile).
    static let trimPageSize = 1_000

    /// Retention, one short transaction per page of a partition's oldest records (found
    /// through the records' primary key), each locking that one partition: appends wait
    /// for a page at most, and a partition of any size is trimmed in steps that each fit in
    /// the statement timeout.
    public func trimStreams() async throws(StoreError) -> Int {
        let logger = configuration.logger
        let (now, streams) = try await withConnection("listing the streams to trim") { connection in
            var now: Int64 = 0
            for try await value in try await connection.query("SELECT \(unescaped: Self.now)", logger: logger).decode(Int64.self) {
                now = value
            }
            var kept: [(id: Int64, retention: StreamRetention, partitions: [Int64])] = []
            for try await (id, age, bytes, drop, partitions) in try await connection.query(
                """
                SELECT s.stream_id, s.retention_ms, s.retention_bytes, s.drop_unconsumed,
                    ARRAY(SELECT partition_id FROM dna_partitions p WHERE p.stream_id = s.stream_id ORDER BY partition_id)
                FROM dna_streams s
                WHERE s.retention_ms IS NOT NULL OR s.retention_bytes IS NOT NULL ORDER BY s.stream_id
                """, logger: logger
            ).decode((Int64, Int64?, Int64?, Bool, [Int64]).self) {
                kept.append(
                    (
                        id, StreamRetention(maxAge: age.map { .milliseconds($0) }, maxBytesPerPartition: bytes, dropUnconsumed: drop),
                        partitions
                    ))
            }
            return (now, kept)
        }
        // Producers made for one append each, long enough ago that no retry can come.
        let forgottenBefore = StreamProducer.oneAppendBound(now - StreamProducer.oneAppendRetention.milliseconds)
        try await inTransaction("forgetting producers of single appends") { connection in
            try await connection.run(
                "DELETE FROM dna_producers WHERE producer_id >= \(StreamProducer.oneAppendPrefix) AND producer_id < \(forgottenBefore)",
                logger: logger)
        }
        var deleted = 0
        var failure: StoreError?
        for (id, retention, partitions) in streams {
            for partition in partitions {
                // A node stopping ends its trim between pages (each page is committed).
                while !Task.isCancelled {
                    do throws(StoreError) {
                        let (count, more) = try await inTransaction("trimming stream \(id) partition \(partition)") { connection in
                            try await Self.trimPage(
                                stream: id, partition: partition, retention: retention, now: now, on: connection, logger: logger)
                        }
                        deleted += count
                        if !more { break }
                    } catch {
                        // A busy partition (a lock timeout) leaves the others to be trimmed;
                        // the run reports the failure once it has tried them all.
                        failure = failure ?? error
                        break
                    }
                }
            }
        }
        if let failure, deleted == 0 { throw failure }
        return deleted
    }

    /// Deletes what retention lets go of among a partition's oldest ``trimPageSize``
    /// records; says how many, and whether the next page may have more to go.
    private static func trimPage(
        stream id: Int64, partition partitionID: Int64, retention: StreamRetention, now: Int64, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> (deleted: Int, more: Bool) {
        var found: StreamPartitionStatus?
        for try await (state, lo, hi, first, next, bytes) in try await connection.query(
            """
            SELECT state, key_lo, key_hi, first_seq, next_seq, bytes FROM dna_partitions
            WHERE stream_id = \(id) AND partition_id = \(partitionID) FOR UPDATE
            """, logger: logger
        ).decode((String, Int64, Int64, Int64, Int64, Int64).self) {
            found = StreamPartitionStatus(
                partition: Int(partitionID), isOpen: state == "open", keyLow: UInt32(lo), keyHigh: UInt32(hi), firstSequence: first,
                nextSequence: next, bytes: bytes, parents: [])
        }
        guard let partition = found else { return (0, false) }
        let progress = try await Self.consumers(of: id, on: connection, logger: logger)
        var rows: [(sequence: Int64, bytes: Int64, appended: Int64)] = []
        for try await (seq, size, appended) in try await connection.query(
            """
            SELECT seq, (octet_length(key) + octet_length(value))::bigint, appended_ms FROM dna_records
            WHERE stream_id = \(id) AND partition_id = \(partitionID) AND seq >= \(partition.firstSequence)
            ORDER BY seq LIMIT \(Int64(trimPageSize))
            """, logger: logger
        ).decode((Int64, Int64, Int64).self) {
            rows.append((seq, size, appended))
        }
        let protected = progress.values.compactMap { $0[partition.partition] }.min()
        let keep = StreamRetentionRule.keepFrom(
            rows, partition: partition, retention: retention, protectedFrom: protected, now: now, totalBytes: partition.bytes)
        guard keep > partition.firstSequence else { return (0, false) }
        let gone = rows.filter { $0.sequence < keep }
        try await connection.run(
            """
            DELETE FROM dna_records
            WHERE stream_id = \(id) AND partition_id = \(partitionID) AND seq >= \(partition.firstSequence) AND seq < \(keep)
            """, logger: logger)
        try await connection.run(
            """
            UPDATE dna_partitions SET first_seq = \(keep), bytes = \(partition.bytes - gone.reduce(0) { $0 + $1.bytes })
            WHERE stream_id = \(id) AND partition_id = \(partitionID)
            """, logger: logger)
        // The whole page went: the next one may go too.
        return (gone.count, rows.count == trimPageSize && gone.count == rows.count)
    }

    /// Splits or merges partitions in one transaction; returns the children's ids. Every
    /// consumer with a checkpoint on the stream gets one at the children's start.
    public func reshard(_ stream: StreamName, _ operation: StreamReshard) async throws(StoreError) -> [Int] {
        try stream.validate()
        let logger = configuration.logger
        return try await inTransaction("resharding stream \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            let change = try operation.change(
                in: try await Self.partitions(of: id, lock: true, on: connection, logger: logger), stream: stream)
            for partition in change.closing {
                try await connection.run(
                    "UPDATE dna_partitions SET state = 'closed' WHERE stream_id = \(id) AND partition_id = \(Int64(partition))",
                    logger: logger)
            }
            for child in change.opening {
                try await connection.run(
                    """
                    INSERT INTO dna_partitions (stream_id, partition_id, state, key_lo, key_hi)
                    VALUES (\(id), \(Int64(child.partition)), 'open', \(Int64(child.lo)), \(Int64(child.hi)))
                    """, logger: logger)
                for parent in change.closing {
                    try await connection.run(
                        "INSERT INTO dna_partition_edges (stream_id, parent_id, child_id) VALUES (\(id), \(Int64(parent)), \(Int64(child.partition)))",
                        logger: logger)
                }
                // Every consumer registered on the stream reads the children from their start.
                try await connection.run(
                    """
                    INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms)
                    SELECT DISTINCT \(id), \(Int64(child.partition)), consumer, 1, \(unescaped: Self.now)
                    FROM dna_stream_progress WHERE stream_id = \(id)
                    ON CONFLICT (stream_id, partition_id, consumer) DO NOTHING
                    """, logger: logger)
            }
            return change.opening.map(\.partition)
        }
    }

    /// The stream's retention, partitions, consumers' checkpoints and parked partitions.
    public func streamStatus(_ stream: StreamName) async throws(StoreError) -> StreamStatus {
        try stream.validate()
        let logger = configuration.logger
        return try await withConnection("reading stream \(stream)") { connection in
            let id = try await Self.streamID(stream, on: connection, logger: logger)
            var retention = StreamRetention()
            for try await (age, bytes, drop) in try await connection.query(
                "SELECT retention_ms, retention_bytes, drop_unconsumed FROM dna_streams WHERE stream_id = \(id)", logger: logger
            ).decode((Int64?, Int64?, Bool).self) {
                retention = StreamRetention(maxAge: age.map { .milliseconds($0) }, maxBytesPerPartition: bytes, dropUnconsumed: drop)
            }
            return StreamStatus(
                stream: stream, retention: retention,
                partitions: try await Self.partitions(of: id, lock: false, on: connection, logger: logger),
                consumers: try await Self.consumers(of: id, on: connection, logger: logger),
                parked: try await Self.parkedConsumers(of: id, on: connection, logger: logger))
        }
    }
}
