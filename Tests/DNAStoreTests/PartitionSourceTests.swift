import DNAPostgres
import DNAStore
import DNATesting
import Foundation
import Logging
import PostgresNIO
import DNATestSupport
import Testing

/// The sources a consumer stage reads: DNA's streams and a PostgreSQL table.
@Suite("Partition sources", .integration, .serialized)
struct PartitionSourceTests {
    @Test(arguments: Engine.allCases)
    func aStreamIsASourceWithItsPartitionsParentsAndSequences(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        let stream = StreamName(namespace: "test", name: "source")
        try await store.createStream(stream, partitions: 2, retention: StreamRetention())
        _ = try await store.append(
            (0..<6).map { StreamAppendRecord(key: [UInt8]("k".utf8), value: [UInt8]("\($0)".utf8), partition: 1) }, to: stream,
            producer: nil)
        _ = try await store.reshard(stream, .split(0))
        let source = StreamSource(store: store, stream: stream)
        let partitions = try await source.partitions()
        #expect(partitions.map(\.id) == ["0", "1", "2", "3"])
        #expect(partitions[0].isOpen == false && partitions[2].parents == ["0"] && partitions[3].parents == ["0"])
        let start = try await source.start(of: "1")
        #expect(start == 0)
        let first = try await source.read("1", after: start, limit: 4)
        #expect(first.map(\.position) == [1, 2, 3, 4])
        let rest = try await source.read("1", after: first.last!.position, limit: 4)
        #expect(rest.map { String(decoding: $0.value, as: UTF8.self) } == ["4", "5"])
        #expect(try await source.read("1", after: 6, limit: 4).isEmpty)
        await #expect(throws: StoreError.self) { _ = try await source.read("x", after: 0, limit: 1) }
        await store.close()
    }

    @Test func aPostgreSQLTableIsASourceOrderedByItsSequenceColumn() async throws {
        guard TestPostgres.isAvailable else { return }
        let url = try #require(try await TestPostgres.freshDatabase())
        let store = try await PostgresStoreTests().openStore(url: url)
        try await LocalPostgresServer.execute(
            "CREATE TABLE readings (id bigserial PRIMARY KEY, device text NOT NULL, payload bytea NOT NULL)", on: url)
        try await LocalPostgresServer.execute(
            "INSERT INTO readings (device, payload) VALUES ('a', 'x1'), ('b', 'y1'), ('a', 'x2'), ('a', 'x3')", on: url)
        let whole = try PostgresTableSource(
            store: store, table: "readings", sequenceColumn: "id", keyColumn: "device", valueColumn: "payload")
        #expect(try await whole.partitions().map(\.id) == ["all"])
        let firstTwo = try await whole.read("all", after: try await whole.start(of: "all"), limit: 2)
        #expect(firstTwo.map(\.position) == [1, 2] && firstTwo.map { String(decoding: $0.key, as: UTF8.self) } == ["a", "b"])
        #expect(try await whole.read("all", after: 2, limit: 10).map(\.position) == [3, 4])
        #expect(try await whole.read("all", after: 4, limit: 10).isEmpty)
        let byDevice = try PostgresTableSource(
            store: store, table: "public.readings", sequenceColumn: "id", keyColumn: "device", valueColumn: "payload",
            partitionColumn: "device")
        #expect(try await byDevice.partitions().map(\.id) == ["a", "b"])
        let a = try await byDevice.read("a", after: 0, limit: 10)
        #expect(a.map(\.position) == [1, 3, 4] && a.map { String(decoding: $0.value, as: UTF8.self) } == ["x1", "x2", "x3"])
        // Names go into the SQL as they are: anything but a plain identifier is refused.
        #expect(throws: StoreError.self) {
            _ = try PostgresTableSource(
                store: store, table: "readings; DROP TABLE readings", sequenceColumn: "id", keyColumn: "device", valueColumn: "payload")
        }
        #expect(throws: StoreError.self) {
            _ = try PostgresTableSource(
                store: store, table: "readings", sequenceColumn: "id", keyColumn: "device\"", valueColumn: "payload")
        }
        await store.close()
    }

    /// Sequence values commit out of order: a row whose value is below one already read must
    /// not be skipped. The consumer reads as a stage does, each time after its last position.
    @Test func aRowCommittedAfterAHigherOneIsNotSkipped() async throws {
        guard TestPostgres.isAvailable else { return }
        let url = try #require(try await TestPostgres.freshDatabase())
        let store = try await PostgresStoreTests().openStore(url: url)
        try await LocalPostgresServer.execute(
            "CREATE TABLE readings (id bigserial PRIMARY KEY, device text NOT NULL, payload text NOT NULL)", on: url)
        let source = try PostgresTableSource(
            store: store, table: "readings", sequenceColumn: "id", keyColumn: "device", valueColumn: "payload")
        var position = try await source.start(of: PostgresTableSource.wholeTable)
        var seen: [Int64] = []
        func poll() async throws {
            let records = try await source.read(PostgresTableSource.wholeTable, after: position, limit: 10)
            seen += records.map(\.position)
            position = records.last?.position ?? position
        }
        let early = try await PostgresStoreTests.connect(url)
        let late = try await PostgresStoreTests.connect(url)
        let logger = Logger(label: "test-application")
        try await early.query("BEGIN", logger: logger)
        try await early.query("INSERT INTO readings (device, payload) VALUES ('a', 'first')", logger: logger)  // takes 1
        try await late.query("INSERT INTO readings (device, payload) VALUES ('a', 'second')", logger: logger)  // takes 2, committed
        try await poll()
        #expect(seen.isEmpty, "row 1 may still commit: nothing at or above it is read yet")
        try await early.query("COMMIT", logger: logger)
        try await poll()
        try await poll()
        #expect(seen == [1, 2])
        // A writer that rolls back holds nothing up once it ended.
        try await early.query("BEGIN", logger: logger)
        try await early.query("INSERT INTO readings (device, payload) VALUES ('a', 'gone')", logger: logger)  // takes 3
        try await late.query("INSERT INTO readings (device, payload) VALUES ('a', 'fourth')", logger: logger)  // takes 4
        try await poll()
        #expect(seen == [1, 2])
        try await early.query("ROLLBACK", logger: logger)
        try await poll()
        #expect(seen == [1, 2, 4])
        try await early.close()
        try await late.close()
        await store.close()
    }

    /// Keys and values of text columns are their UTF-8 text, backslashes included; bytea
    /// columns are their bytes.
    @Test func textColumnsAreReadAsTheirTextAndByteaAsItsBytes() async throws {
        guard TestPostgres.isAvailable else { return }
        let url = try #require(try await TestPostgres.freshDatabase())
        let store = try await PostgresStoreTests().openStore(url: url)
        try await LocalPostgresServer.execute(
            """
            CREATE TABLE files (id bigserial PRIMARY KEY, path text NOT NULL, raw bytea NOT NULL);
            INSERT INTO files (path, raw) VALUES ('C:\\temp\\x41', '\\x005cff'::bytea);
            """, on: url)
        let text = try PostgresTableSource(store: store, table: "files", sequenceColumn: "id", keyColumn: "raw", valueColumn: "path")
        let records = try await text.read(PostgresTableSource.wholeTable, after: 0, limit: 10)
        #expect(records.map { String(decoding: $0.value, as: UTF8.self) } == [#"C:\temp\x41"#])
        #expect(records.map(\.key) == [[0x00, 0x5c, 0xff]])
        let byPath = try PostgresTableSource(
            store: store, table: "files", sequenceColumn: "id", keyColumn: "path", valueColumn: "raw", partitionColumn: "path")
        let partition = try #require(try await byPath.partitions().first)
        #expect(partition.id == #"C:\temp\x41"#)
        let again = try await byPath.read(partition.id, after: 0, limit: 10)
        #expect(again.map(\.key) == [Array(#"C:\temp\x41"#.utf8)] && again.map(\.value) == [[0x00, 0x5c, 0xff]])
        await store.close()
    }
}
