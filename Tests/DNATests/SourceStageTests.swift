import DNA
import DNAPostgres
import DNATesting
import Foundation
import Synchronization
import DNATestSupport
import Testing

/// Brings a PostgreSQL table, partitioned by device, into the DNA stream `ingested`.
final class TableIngest: SourceStage {
    static let kind: ActorKind = "table-ingest"
    static let output = StreamName(namespace: "test", name: "ingested")
    static var namespace: String { "test" }
    static var batchSize: Int { 25 }

    static func source(on node: Node) throws -> PostgresTableSource {
        guard let store = node.store as? PostgresStore else { throw DNAError(.invalidArgument, "table-ingest reads PostgreSQL") }
        return try PostgresTableSource(
            store: store, table: "sensor_rows", sequenceColumn: "id", keyColumn: "device", valueColumn: "reading", partitionColumn: "device"
        )
    }

    init(context: ActorContext) async throws {}

    func process(_ records: [SourceRecord<Int64>], context: ActorContext) async throws {
        for record in records { try context.append(to: Self.output, key: record.key, value: record.value) }
    }
}

/// Copies a DNA stream read through ``StreamSource`` to `source-dst` (the value: the
/// record's sequence); a record "bad" throws while the flag says so.
final class StreamSourceCopy: SourceStage {
    static let kind: ActorKind = "stream-source-copy"
    static let input = StreamName(namespace: "test", name: "source-src")
    static let output = StreamName(namespace: "test", name: "source-dst")
    static let failBad = Atomic<Bool>(false)
    static var namespace: String { "test" }
    static var batchSize: Int { 10 }
    static var failurePolicy: StageFailurePolicy { StageFailurePolicy(attempts: 2, firstBackOff: .milliseconds(10)) }

    static func source(on node: Node) throws -> StreamSource { StreamSource(store: node.store, stream: input) }

    init(context: ActorContext) async throws {}

    func process(_ records: [SourceRecord<Int64>], context: ActorContext) async throws {
        for record in records {
            if Self.failBad.load(ordering: .relaxed), record.value == Array("bad".utf8) { throw TestFailure(reason: "bad record") }
            try context.append(to: Self.output, key: record.key, value: Array("\(record.position)".utf8), partition: 0)
        }
    }
}

@Suite("Source stages", .integration, .serialized, .timeLimit(.minutes(2)))
struct SourceStageTests {
    /// A source stage over a DNA stream holds its records back from retention as a stream
    /// stage does: what it has not read stays, however far over the size limit.
    /// A node running `StreamSourceCopy` over 50 input records (the 26th fails until
    /// `failBad` is cleared), the input kept by `retention`.
    private func startCopying(_ retention: StreamRetention, in directory: TemporaryDirectory) async throws -> Node {
        StreamSourceCopy.failBad.store(true, ordering: .relaxed)
        let setup = SQLiteStore(configuration: .init(path: directory.databasePath))
        try await setup.open()
        try await setup.createStream(StreamSourceCopy.input, partitions: 1, retention: retention)
        try await setup.createStream(StreamSourceCopy.output, partitions: 1, retention: StreamRetention())
        let records = (0..<50).map { StreamAppendRecord(key: Array("r-\($0)".utf8), value: Array(($0 == 25 ? "bad" : "ok").utf8)) }
        _ = try await setup.append(records, to: StreamSourceCopy.input, producer: nil)
        await setup.close()
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.namespace = "test"
        return try await Node.started(configuration: configuration, actors: [StreamSourceCopy.self])
    }

    /// The record numbers copied to the output, in order.
    private static func copied(_ store: any ActorStore) async throws -> [Int64] {
        try await store.readStream(StreamSourceCopy.output, partition: 0, from: 1, limit: 1000).map {
            Int64(String(decoding: $0.value, as: UTF8.self))!
        }
    }

    @Test func aSourceStageOverADNAStreamKeepsWhatItHasNotReadFromRetention() async throws {
        let directory = try TemporaryDirectory()
        let node = try await startCopying(StreamRetention(maxBytesPerPartition: 100), in: directory)
        let store = node.store
        func copied() async throws -> [Int64] { try await Self.copied(store) }
        // Two batches of ten, then the bad record's batch fails.
        #expect(
            try await eventuallyAsync {
                try await store.streamStatus(StreamSourceCopy.input).consumers[StreamSourceCopy.kind.name]?[0] == 21
            })
        _ = try await store.trimStreams()
        #expect(try await store.streamStatus(StreamSourceCopy.input).partitions[0].firstSequence == 21, "only what the stage read")
        StreamSourceCopy.failBad.store(false, ordering: .relaxed)
        try await node.resumeSourceStage(StreamSourceCopy.self, partition: "0")
        #expect(try await eventuallyAsync { try await copied().count == 50 })
        #expect(try await copied() == Array(1...50))
        await node.shutdown()
    }

    /// The same stage over a stream that drops unread records, trimmed past its position
    /// while it is parked: resumed, it moves on from the first record kept.
    @Test func aSourceStageWhosePositionRetentionDroppedMovesOn() async throws {
        let directory = try TemporaryDirectory()
        let node = try await startCopying(StreamRetention(maxBytesPerPartition: 100, dropUnconsumed: true), in: directory)
        let store = node.store
        func copied() async throws -> [Int64] { try await Self.copied(store) }
        #expect(
            try await eventuallyAsync {
                try await store.streamStatus(StreamSourceCopy.input).consumers[StreamSourceCopy.kind.name]?[0] == 21
            })
        #expect(try await store.trimStreams() > 20)
        let first = try await store.streamStatus(StreamSourceCopy.input).partitions[0].firstSequence
        StreamSourceCopy.failBad.store(false, ordering: .relaxed)
        try await node.resumeSourceStage(StreamSourceCopy.self, partition: "0")
        #expect(try await eventuallyAsync { try await copied().count == 20 + Int(51 - first) })
        #expect(try await copied() == Array(1...20) + Array(first...50), "what it read, then what was kept")
        await node.shutdown()
    }

    static func insert(_ range: Range<Int>, url: String) async throws {
        let rows = range.map { "('d\($0 % 5)', convert_to('r\($0)', 'UTF8'))" }.joined(separator: ", ")
        try await LocalPostgresServer.execute("INSERT INTO sensor_rows (device, reading) VALUES \(rows)", on: url)
    }

    static func ingested(_ store: any ActorStore) async throws -> [(device: String, reading: Int)] {
        let status = try await store.streamStatus(TableIngest.output)
        var result: [(String, Int)] = []
        for partition in status.partitions where partition.length > 0 {
            for record in try await store.readStream(TableIngest.output, partition: partition.partition, from: 1, limit: 10_000) {
                result.append(
                    (String(decoding: record.key, as: UTF8.self), Int(String(decoding: record.value, as: UTF8.self).dropFirst())!))
            }
        }
        return result
    }

    /// A table's rows reach a DNA stream exactly once, in order per device, across a node
    /// stopping mid-way and another taking over from the stored source positions.
    @Test func aPostgreSQLTableIsIngestedExactlyOnceAcrossANodeChange() async throws {
        guard let url = try await TestPostgres.freshDatabase() else { return }
        var configuration = Node.Configuration(store: .postgres(url: url))
        configuration.namespace = "test"
        let first = try await Node.started(configuration: configuration, actors: [TableIngest.self])
        // The application's table beside DNA's (made after them: DNA refuses a database of
        // someone else's tables).
        try await LocalPostgresServer.execute(
            "CREATE TABLE sensor_rows (id bigserial PRIMARY KEY, device text NOT NULL, reading bytea NOT NULL)", on: url)
        try await first.store.createStream(TableIngest.output, partitions: 3, retention: StreamRetention())
        try await Self.insert(0..<500, url: url)
        #expect(try await eventuallyAsync(within: .seconds(30)) { try await Self.ingested(first.store).count == 500 })
        // More rows, and the node stops while it brings them in.
        try await Self.insert(500..<1_500, url: url)
        #expect(try await eventuallyAsync(within: .seconds(30)) { try await Self.ingested(first.store).count >= 600 })
        await first.shutdown()
        let second = try await Node.started(configuration: configuration, actors: [TableIngest.self])
        #expect(try await eventuallyAsync(within: .seconds(30)) { try await Self.ingested(second.store).count >= 1_500 })
        // With the node down nothing more is ingested: what the stream holds now is final.
        await second.shutdown()
        let reader = try PostgresStore(configuration: .init(url: url))
        let rows = try await reader.withRunning { try await Self.ingested($0) }
        #expect(rows.count == 1_500, "each row once")
        #expect(Set(rows.map(\.reading)) == Set(0..<1_500))
        for device in 0..<5 {
            let readings = rows.filter { $0.device == "d\(device)" }.map(\.reading)
            #expect(zip(readings, readings.dropFirst()).allSatisfy { $0 < $1 }, "d\(device) in the table's order, once each")
        }
    }
}
