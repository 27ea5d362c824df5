import DNAStore
import Foundation
import DNATestSupport
import Testing

@Suite("SQLite file checks", .integration, .serialized)
struct SQLiteFileTests {
    func temporaryPath() throws -> (String, () -> Void) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dna-file-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return (directory.appendingPathComponent("file.db").path, { try? FileManager.default.removeItem(at: directory) })
    }

    @Test func anotherApplicationsDatabaseIsRefused() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        let other = try SQLiteConnection(path: path)
        try other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5)")
        let error = await #expect(throws: StoreError.self) { try await SQLiteStore(configuration: .init(path: path)).open() }
        #expect(error?.code == .notADNADatabase)
        // Nothing of theirs was touched.
        let count = try other.prepare("SELECT count(*) FROM invoices")
        #expect(try count.step())
        #expect(count.int64(0) == 1)
    }

    @Test func garbageFileIsRefused() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).write(to: URL(fileURLWithPath: path))
        let error = await #expect(throws: StoreError.self) { try await SQLiteStore(configuration: .init(path: path)).open() }
        #expect(error?.code == .notADNADatabase)
    }

    @Test func aVersion1FileIsMigrated() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        // Make it a file of schema version 1, as the previous release wrote it.
        let old = try SQLiteConnection(path: path)
        try old.execute(
            "ALTER TABLE dna_nodes DROP COLUMN failure_timeout_ms; ALTER TABLE dna_actors DROP COLUMN order_state; "
                + "ALTER TABLE dna_nodes DROP COLUMN labels; ALTER TABLE dna_nodes DROP COLUMN rebalance_requested; "
                + Self.dropStreamTables + "UPDATE dna_meta SET value = '1' WHERE key = 'schema_version'")
        try old.execute(
            "INSERT INTO dna_nodes (node_id, cluster, address, state, started_ms, heartbeat_ms) VALUES ('old', 'c', 'x', 'up', 0, 0)")
        let store = try await SQLiteStore.opened(.init(path: path))
        try await store.join(node: NodeID(rawValue: "new"), cluster: "c", address: "y", failureTimeout: .seconds(9), labels: [])
        let records = try await store.nodes(cluster: "c")
        #expect(records.first { $0.id.rawValue == "old" }?.failureTimeoutMilliseconds == 5000, "rows of version 1 get the default")
        #expect(records.first { $0.id.rawValue == "new" }?.failureTimeoutMilliseconds == 9000)
        await store.close()
        let check = try SQLiteConnection(path: path)
        let version = try check.prepare("SELECT value FROM dna_meta WHERE key = 'schema_version'")
        _ = try version.step()
        #expect(version.string(0) == "\(SQLiteSchema.version)")
        version.reset()
    }

    /// Undoes version 4 (streams), to make a file of an earlier version.
    static let dropStreamTables =
        "DROP TABLE dna_streams; DROP TABLE dna_partitions; DROP TABLE dna_partition_edges; DROP TABLE dna_records; DROP TABLE dna_producers; DROP TABLE dna_stream_progress; "

    @Test func aVersion3FileGetsStreams() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        let old = try SQLiteConnection(path: path)
        try old.execute(Self.dropStreamTables + "UPDATE dna_meta SET value = '3' WHERE key = 'schema_version'")
        let store = try await SQLiteStore.opened(.init(path: path))
        let stream = StreamName(name: "after-migration")
        try await store.createStream(stream, partitions: 2, retention: StreamRetention())
        #expect(try await store.streamStatus(stream).partitions.count == 2)
        await store.close()
    }

    @Test func aVersion4FileGetsParkedConsumers() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        let old = try SQLiteConnection(path: path)
        try old.execute("ALTER TABLE dna_stream_progress DROP COLUMN parked; UPDATE dna_meta SET value = '4' WHERE key = 'schema_version'")
        let store = try await SQLiteStore.opened(.init(path: path))
        let stream = StreamName(name: "before-parking")
        try await store.createStream(stream, partitions: 1, retention: StreamRetention())
        #expect(try await store.resumeConsumer("stage", of: stream, partition: nil) == 0)
        #expect(try await store.streamStatus(stream).parked.isEmpty)
        await store.close()
        let check = try SQLiteConnection(path: path)
        let version = try check.prepare("SELECT value FROM dna_meta WHERE key = 'schema_version'")
        _ = try version.step()
        #expect(version.string(0) == "5")
        version.reset()
    }

    @Test func aVersion2FileIsMigrated() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        let old = try SQLiteConnection(path: path)
        try old.execute(
            "ALTER TABLE dna_nodes DROP COLUMN labels; ALTER TABLE dna_nodes DROP COLUMN rebalance_requested; "
                + Self.dropStreamTables + "UPDATE dna_meta SET value = '2' WHERE key = 'schema_version'")
        try old.execute(
            "INSERT INTO dna_nodes (node_id, cluster, address, state, started_ms, heartbeat_ms) VALUES ('old', 'c', 'x', 'up', 0, 0)")
        let store = try await SQLiteStore.opened(.init(path: path))
        try await store.join(node: NodeID(rawValue: "new"), cluster: "c", address: "y", failureTimeout: .seconds(9), labels: ["eu"])
        let records = try await store.nodes(cluster: "c")
        #expect(records.first { $0.id.rawValue == "old" }?.labels == [])
        #expect(records.first { $0.id.rawValue == "new" }?.labels == ["eu"])
        #expect(records.allSatisfy { !$0.rebalanceRequested })
        await store.close()
    }

    @Test func dueAlarmsAreReadThroughTheirIndexNotByVisitingActors() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        let connection = try SQLiteConnection(path: path)
        let plan = try connection.prepare("EXPLAIN QUERY PLAN " + SQLiteSchema.dueAlarms)
        var steps: [String] = []
        while try plan.step() { steps.append(plan.string(3)) }
        plan.reset()
        #expect(steps.contains { $0.contains("USING INDEX dna_alarms_due") }, "\(steps)")
        #expect(!steps.contains { $0.hasPrefix("SCAN m") || $0.hasPrefix("SCAN dna_module_data") }, "\(steps)")
    }

    /// `close()` returns only once the file is let go: SQLite removes the WAL when the last
    /// connection closes, so a WAL left behind means a connection outlived `close()`, and
    /// its late close would find the next opener's transaction in its way.
    @Test func closeLetsTheFileGoBeforeItReturns() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        for round in 0..<20 {
            let store = try await SQLiteStore.opened(.init(path: path))
            try await store.join(node: NodeID(rawValue: "n\(round)"), cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
            await store.close()
            #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "round \(round): a connection is still open")
            let next = try SQLiteConnection(path: path)
            try next.execute("PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE; COMMIT")
        }
    }

    /// The nodes of a local cluster start together on a file none of them made yet.
    @Test func storesOpeningANewSharedFileTogetherAllOpen() async throws {
        for _ in 0..<30 {
            let (path, cleanup) = try temporaryPath()
            defer { cleanup() }
            var configuration = SQLiteStore.Configuration(path: path)
            configuration.sharing = .shared
            let stores = (0..<3).map { _ in SQLiteStore(configuration: configuration) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for store in stores { group.addTask { try await store.open() } }
                try await group.waitForAll()
            }
            for (index, store) in stores.enumerated() {
                try await store.join(
                    node: NodeID(rawValue: "n\(index)"), cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
            }
            for store in stores { await store.close() }
        }
    }

    @Test func newerSchemaIsRefused() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        try await SQLiteStore.opened(.init(path: path)).close()
        let connection = try SQLiteConnection(path: path)
        try connection.execute("UPDATE dna_meta SET value = '99' WHERE key = 'schema_version'")
        let error = await #expect(throws: StoreError.self) { try await SQLiteStore(configuration: .init(path: path)).open() }
        #expect(error?.code == .schemaTooNew)
    }

    /// Why the writer clears large bindings: SQLite keeps its copy of a bound value across
    /// `reset`, until the parameter is bound again or cleared.
    @Test func boundValuesStayUntilCleared() throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        let connection = try SQLiteConnection(path: path)
        let select = try connection.prepare("SELECT ?1")
        select.bind(1, bytes: [1, 2, 3])
        #expect(try select.step())
        select.reset()
        #expect(try select.step())
        #expect(select.bytes(0) == [1, 2, 3])
        select.reset()
        select.clearBindings()
        #expect(try select.step())
        #expect(select.isNull(0))
    }

    @Test func exclusiveFileCannotBeOpenedTwice() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        let first = try await SQLiteStore.opened(.init(path: path))
        let error = await #expect(throws: StoreError.self) { try await SQLiteStore(configuration: .init(path: path)).open() }
        #expect(error?.code == .inUse)
        _ = first
    }

    @Test func lockedDatabaseFailsCommitsAsUnavailableThenRecovers() async throws {
        let (path, cleanup) = try temporaryPath()
        defer { cleanup() }
        var configuration = SQLiteStore.Configuration(path: path)
        configuration.busyTimeout = .milliseconds(10)
        let store = try await SQLiteStore.opened(configuration)
        let node = NodeID(rawValue: "n")
        try await store.join(node: node, cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
        guard
            case .granted(let registration, _) = try await store.activate(
                ActivationRequest(actor: ActorID(namespace: "t", kind: "k", key: "a"), node: node))
        else { Issue.record("not granted"); return }
        let blocker = try SQLiteConnection(path: path)
        try blocker.execute("BEGIN EXCLUSIVE")
        let batch = CommitBatch(
            registration: registration, sequence: 1, operations: [StorageOperation(module: "kv", key: [1], value: [2])])
        let error = await #expect(throws: StoreError.self) { try await store.commit(batch) }
        #expect(error?.code == .unavailable)
        #expect(error?.isRetryable == true)
        try blocker.execute("ROLLBACK")
        try await store.commit(batch)
        await store.close()
    }
}

extension SQLiteStore {
    /// A store made and opened (tests use stores without a node).
    static func opened(_ configuration: Configuration) async throws -> SQLiteStore {
        let store = SQLiteStore(configuration: configuration)
        try await store.open()
        return store
    }
}
