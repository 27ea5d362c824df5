/// Streams on SQLite: each operation runs inside the worker's transaction (a job that
/// throws is rolled back and leaves nothing).
extension SQLiteSession {
    func streamID(_ stream: StreamName) throws(StoreError) -> Int64 {
        let statement = cachedStatement("SELECT stream_id FROM dna_streams WHERE namespace = ?1 AND name = ?2")
        defer { statement.reset() }
        statement.bind(1, stream.namespace)
        statement.bind(2, stream.name)
        guard try statement.step() else { throw StoreError(.notFound, "no stream \(stream)") }
        return statement.int64(0)
    }

    func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) throws(StoreError) {
        let existing = cachedStatement("SELECT 1 FROM dna_streams WHERE namespace = ?1 AND name = ?2")
        existing.bind(1, stream.namespace)
        existing.bind(2, stream.name)
        let exists = try existing.step()
        existing.reset()
        if exists { throw StoreError(.invalidArgument, "stream \(stream) exists already") }
        let insert = cachedStatement(
            """
            INSERT INTO dna_streams (namespace, name, retention_ms, retention_bytes, drop_unconsumed, created_ms)
            VALUES (?1, ?2, ?3, ?4, ?5, \(SQLiteSchema.nowMilliseconds))
            """)
        insert.bind(1, stream.namespace)
        insert.bind(2, stream.name)
        insert.bind(3, retention.maxAge?.milliseconds)
        insert.bind(4, retention.maxBytesPerPartition)
        insert.bind(5, retention.dropUnconsumed ? 1 : 0)
        try insert.run()
        let id = connection.lastInsertRowID
        let partition = cachedStatement(
            """
            INSERT INTO dna_partitions (stream_id, partition_id, state, key_lo, key_hi) VALUES (?1, ?2, 'open', ?3, ?4)
            """)
        for (index, range) in StreamKeyHash.ranges(count: partitions).enumerated() {
            partition.bind(1, id)
            partition.bind(2, Int64(index))
            partition.bind(3, Int64(range.lo))
            partition.bind(4, Int64(range.hi))
            try partition.run()
        }
    }

    func streamStatus(_ stream: StreamName) throws(StoreError) -> StreamStatus {
        let id = try streamID(stream)
        let retention = cachedStatement("SELECT retention_ms, retention_bytes, drop_unconsumed FROM dna_streams WHERE stream_id = ?1")
        retention.bind(1, id)
        _ = try retention.step()
        let kept = StreamRetention(
            maxAge: retention.isNull(0) ? nil : .milliseconds(retention.int64(0)),
            maxBytesPerPartition: retention.isNull(1) ? nil : retention.int64(1), dropUnconsumed: retention.int64(2) != 0)
        retention.reset()
        return StreamStatus(
            stream: stream, retention: kept, partitions: try partitions(of: id), consumers: try consumers(of: id),
            parked: try parkedConsumers(of: id))
    }

    func partitions(of id: Int64) throws(StoreError) -> [StreamPartitionStatus] {
        let select = cachedStatement(
            """
            SELECT partition_id, state, key_lo, key_hi, first_seq, next_seq, bytes FROM dna_partitions
            WHERE stream_id = ?1 ORDER BY partition_id
            """)
        defer { select.reset() }
        select.bind(1, id)
        var result: [StreamPartitionStatus] = []
        while try select.step() {
            result.append(
                StreamPartitionStatus(
                    partition: Int(select.int64(0)), isOpen: select.string(1) == "open", keyLow: UInt32(select.int64(2)),
                    keyHigh: UInt32(select.int64(3)), firstSequence: select.int64(4), nextSequence: select.int64(5),
                    bytes: select.int64(6), parents: []))
        }
        let edges = cachedStatement("SELECT parent_id, child_id FROM dna_partition_edges WHERE stream_id = ?1 ORDER BY parent_id")
        defer { edges.reset() }
        edges.bind(1, id)
        while try edges.step() {
            let (parent, child) = (Int(edges.int64(0)), Int(edges.int64(1)))
            if let index = result.firstIndex(where: { $0.partition == child }) { result[index].parents.append(parent) }
        }
        return result
    }

    func append(_ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?) throws(StoreError) -> [StreamPosition] {
        let id = try streamID(stream)
        var lastStored: Int64 = 0
        if let producer {
            let last = cachedStatement("SELECT last_seq FROM dna_producers WHERE stream_id = ?1 AND producer_id = ?2")
            last.bind(1, id)
            last.bind(2, producer.id)
            if try last.step() { lastStored = last.int64(0) }
            last.reset()
        }
        let plan = try StreamAppendRule.plan(
            records, in: try partitions(of: id), stream: stream, producer: producer, lastStored: lastStored)
        let insert = cachedStatement(
            """
            INSERT INTO dna_records (stream_id, partition_id, seq, key, value, appended_ms)
            VALUES (?1, ?2, ?3, ?4, ?5, \(SQLiteSchema.nowMilliseconds))
            """)
        for row in plan.inserts {
            insert.bind(1, id)
            insert.bind(2, Int64(row.partition))
            insert.bind(3, row.sequence)
            insert.bind(4, bytes: row.record.key)
            insert.bind(5, bytes: row.record.value)
            try insert.run()
        }
        let update = cachedStatement("UPDATE dna_partitions SET next_seq = ?3, bytes = ?4 WHERE stream_id = ?1 AND partition_id = ?2")
        for partition in plan.changed {
            update.bind(1, id)
            update.bind(2, Int64(partition.partition))
            update.bind(3, partition.nextSequence)
            update.bind(4, partition.bytes)
            try update.run()
        }
        if let producer, let highest = plan.producerLast {
            let upsert = cachedStatement(
                """
                INSERT INTO dna_producers (stream_id, producer_id, last_seq) VALUES (?1, ?2, ?3)
                ON CONFLICT (stream_id, producer_id) DO UPDATE SET last_seq = excluded.last_seq
                """)
            upsert.bind(1, id)
            upsert.bind(2, producer.id)
            upsert.bind(3, highest)
            try upsert.run()
        }
        return plan.positions
    }

    func readStream(_ stream: StreamName, partition: Int, from sequence: Int64, limit: Int) throws(StoreError) -> [StreamRecord] {
        let id = try streamID(stream)
        guard let status = try partitions(of: id).first(where: { $0.partition == partition }) else {
            throw StoreError(.notFound, "stream \(stream) has no partition \(partition)")
        }
        try StreamReadRule.check(from: sequence, limit: limit, in: status, stream: stream)
        let select = cachedStatement(
            """
            SELECT seq, key, value, appended_ms FROM dna_records
            WHERE stream_id = ?1 AND partition_id = ?2 AND seq >= ?3 ORDER BY seq LIMIT ?4
            """)
        defer { select.reset() }
        select.bind(1, id)
        select.bind(2, Int64(partition))
        select.bind(3, sequence)
        select.bind(4, Int64(limit))
        var records: [StreamRecord] = []
        while try select.step() {
            records.append(
                StreamRecord(
                    partition: partition, sequence: select.int64(0), key: select.bytes(1), value: select.bytes(2),
                    appendedMilliseconds: select.int64(3)))
        }
        return records
    }
}

extension SQLiteSession {
    func reshard(_ stream: StreamName, _ operation: StreamReshard) throws(StoreError) -> [Int] {
        let id = try streamID(stream)
        let change = try operation.change(in: try partitions(of: id), stream: stream)
        let close = cachedStatement(
            "UPDATE dna_partitions SET state = 'closed' WHERE stream_id = ?1 AND partition_id = ?2 AND state = 'open'")
        for partition in change.closing {
            close.bind(1, id)
            close.bind(2, Int64(partition))
            try close.run()
        }
        let insert = cachedStatement(
            "INSERT INTO dna_partitions (stream_id, partition_id, state, key_lo, key_hi) VALUES (?1, ?2, 'open', ?3, ?4)")
        let edge = cachedStatement("INSERT INTO dna_partition_edges (stream_id, parent_id, child_id) VALUES (?1, ?2, ?3)")
        // Every consumer registered on the stream reads the children from their start.
        let checkpoint = cachedStatement(
            """
            INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms)
            SELECT DISTINCT ?1, ?2, consumer, 1, \(SQLiteSchema.nowMilliseconds) FROM dna_stream_progress WHERE stream_id = ?1
            ON CONFLICT (stream_id, partition_id, consumer) DO NOTHING
            """)
        for child in change.opening {
            insert.bind(1, id)
            insert.bind(2, Int64(child.partition))
            insert.bind(3, Int64(child.lo))
            insert.bind(4, Int64(child.hi))
            try insert.run()
            for parent in change.closing {
                edge.bind(1, id)
                edge.bind(2, Int64(parent))
                edge.bind(3, Int64(child.partition))
                try edge.run()
            }
            checkpoint.bind(1, id)
            checkpoint.bind(2, Int64(child.partition))
            try checkpoint.run()
        }
        return change.opening.map(\.partition)
    }
}

extension SQLiteSession {
    func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64, parked: String? = nil) throws(StoreError) {
        let id = try streamID(stream)
        guard let status = try partitions(of: id).first(where: { $0.partition == partition }) else {
            throw StoreError(.notFound, "stream \(stream) has no partition \(partition)")
        }
        try StreamProgressRule.check(consumer: consumer, next: next, in: status, stream: stream)
        let upsert = cachedStatement(
            """
            INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms, parked)
            VALUES (?1, ?2, ?3, ?4, \(SQLiteSchema.nowMilliseconds), ?5)
            ON CONFLICT (stream_id, partition_id, consumer)
            DO UPDATE SET next_seq = excluded.next_seq, updated_ms = excluded.updated_ms, parked = excluded.parked
            """)
        upsert.bind(1, id)
        upsert.bind(2, Int64(partition))
        upsert.bind(3, consumer)
        upsert.bind(4, next)
        upsert.bind(5, parked)
        try upsert.run()
    }

    /// Clears the parked mark of a consumer's partitions (all when `partition` is `nil`);
    /// returns how many were parked.
    func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) throws(StoreError) -> Int {
        let id = try streamID(stream)
        let update = cachedStatement(
            """
            UPDATE dna_stream_progress SET parked = NULL
            WHERE stream_id = ?1 AND consumer = ?2 AND parked IS NOT NULL AND (?3 IS NULL OR partition_id = ?3)
            """)
        update.bind(1, id)
        update.bind(2, consumer)
        update.bind(3, partition.map(Int64.init))
        try update.run()
        return connection.changes
    }

    func parkedConsumers(of id: Int64) throws(StoreError) -> [String: [Int: String]] {
        let select = cachedStatement(
            "SELECT consumer, partition_id, parked FROM dna_stream_progress WHERE stream_id = ?1 AND parked IS NOT NULL")
        defer { select.reset() }
        select.bind(1, id)
        var result: [String: [Int: String]] = [:]
        while try select.step() { result[select.string(0), default: [:]][Int(select.int64(1))] = select.string(2) }
        return result
    }

    /// Applies a batch's stream effects, in its transaction (after its fence check).
    func apply(_ effects: StreamEffects) throws(StoreError) {
        for append in effects.appends { _ = try self.append(append.records, to: append.stream, producer: nil) }
        for progress in effects.progress {
            try commitProgress(
                consumer: progress.consumer, stream: progress.stream, partition: progress.partition, next: progress.next,
                parked: progress.parked)
        }
    }

    func registerConsumer(_ consumer: String, of stream: StreamName) throws(StoreError) -> Int {
        let id = try streamID(stream)
        try StreamProgressRule.checkName(consumer)
        let insert = cachedStatement(
            """
            INSERT INTO dna_stream_progress (stream_id, partition_id, consumer, next_seq, updated_ms)
            SELECT stream_id, partition_id, ?2, first_seq, \(SQLiteSchema.nowMilliseconds) FROM dna_partitions WHERE stream_id = ?1
            ON CONFLICT (stream_id, partition_id, consumer) DO NOTHING
            """)
        insert.bind(1, id)
        insert.bind(2, consumer)
        try insert.run()
        return connection.changes
    }

    func forgetConsumer(_ consumer: String, of stream: StreamName) throws(StoreError) -> Int {
        let id = try streamID(stream)
        let delete = cachedStatement("DELETE FROM dna_stream_progress WHERE stream_id = ?1 AND consumer = ?2")
        delete.bind(1, id)
        delete.bind(2, consumer)
        try delete.run()
        return connection.changes
    }

    func consumers(of id: Int64) throws(StoreError) -> [String: [Int: Int64]] {
        let select = cachedStatement("SELECT consumer, partition_id, next_seq FROM dna_stream_progress WHERE stream_id = ?1")
        defer { select.reset() }
        select.bind(1, id)
        var result: [String: [Int: Int64]] = [:]
        while try select.step() { result[select.string(0), default: [:]][Int(select.int64(1))] = select.int64(2) }
        return result
    }

    func trimStreams() throws(StoreError) -> Int {
        let now = cachedStatement("SELECT \(SQLiteSchema.nowMilliseconds)")
        _ = try now.step()
        let nowMilliseconds = now.int64(0)
        now.reset()
        let streams = cachedStatement(
            """
            SELECT stream_id, retention_ms, retention_bytes, drop_unconsumed FROM dna_streams
            WHERE retention_ms IS NOT NULL OR retention_bytes IS NOT NULL
            """)
        var kept: [(Int64, StreamRetention)] = []
        while try streams.step() {
            kept.append(
                (
                    streams.int64(0),
                    StreamRetention(
                        maxAge: streams.isNull(1) ? nil : .milliseconds(streams.int64(1)),
                        maxBytesPerPartition: streams.isNull(2) ? nil : streams.int64(2), dropUnconsumed: streams.int64(3) != 0)
                ))
        }
        streams.reset()
        // Producers made for one append each, long enough ago that no retry can come.
        let producers = cachedStatement("DELETE FROM dna_producers WHERE producer_id >= ?1 AND producer_id < ?2")
        producers.bind(1, StreamProducer.oneAppendPrefix)
        producers.bind(2, StreamProducer.oneAppendBound(nowMilliseconds - StreamProducer.oneAppendRetention.milliseconds))
        _ = try producers.step()
        producers.reset()
        let records = cachedStatement(
            """
            SELECT seq, length(key) + length(value), appended_ms FROM dna_records
            WHERE stream_id = ?1 AND partition_id = ?2 ORDER BY seq
            """)
        let delete = cachedStatement("DELETE FROM dna_records WHERE stream_id = ?1 AND partition_id = ?2 AND seq < ?3")
        let update = cachedStatement("UPDATE dna_partitions SET first_seq = ?3, bytes = ?4 WHERE stream_id = ?1 AND partition_id = ?2")
        var deleted = 0
        for (id, retention) in kept {
            let progress = try consumers(of: id)
            for partition in try partitions(of: id) {
                records.bind(1, id)
                records.bind(2, Int64(partition.partition))
                var rows: [(sequence: Int64, bytes: Int64, appended: Int64)] = []
                while try records.step() { rows.append((records.int64(0), records.int64(1), records.int64(2))) }
                records.reset()
                let protected = progress.values.compactMap { $0[partition.partition] }.min()
                let keep = StreamRetentionRule.keepFrom(
                    rows, partition: partition, retention: retention, protectedFrom: protected, now: nowMilliseconds)
                guard keep > partition.firstSequence else { continue }
                let gone = rows.filter { $0.sequence < keep }
                delete.bind(1, id)
                delete.bind(2, Int64(partition.partition))
                delete.bind(3, keep)
                try delete.run()
                update.bind(1, id)
                update.bind(2, Int64(partition.partition))
                update.bind(3, keep)
                update.bind(4, partition.bytes - gone.reduce(0) { $0 + $1.bytes })
                try update.run()
                deleted += gone.count
            }
        }
        return deleted
    }
}
