@testable import DNAPostgres
import DNAStore
import Foundation
import Logging
import PostgresNIO
import Synchronization
import DNATesting
import DNATestSupport
import Testing

/// What only the PostgreSQL engine has: many connections, a server that can go away,
/// databases that belong to someone else.
@Suite("PostgreSQL store", .integration, .serialized, .enabled(if: TestPostgres.isAvailable))
struct PostgresStoreTests {
    let node = NodeID(rawValue: "node-a")

    func openStore(
        url: String? = nil, _ adjust: (inout PostgresStore.Configuration) -> Void = { _ in }
    ) async throws
        -> PostgresStore
    {
        let target: String
        if let url { target = url } else { target = try #require(try await TestPostgres.freshDatabase()) }
        var configuration = try PostgresStore.Configuration(url: target)
        adjust(&configuration)
        return try await PostgresStore.running(configuration)
    }

    func put(_ key: String, _ value: String?) -> StorageOperation {
        StorageOperation(module: "kv", key: bytes(key), value: value.map(bytes))
    }

    @Test func fiftyClaimantsOnSeparateConnectionsExactlyOneIsGranted() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        // Five stores of ten connections each: 50 claims in flight at once, each by a live
        // node of its own, so none may be granted the name after another was.
        var stores: [PostgresStore] = []
        for _ in 0..<5 { stores.append(try await openStore(url: url) { $0.pool.maximumConnections = 10 }) }
        let claimants = (0..<50).map { NodeID(rawValue: "claimant-\($0)") }
        for claimant in claimants {
            try await stores[0].join(node: claimant, cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
            try await stores[0].heartbeat(node: claimant, state: .up, activations: 0)
        }
        let target = ActorID(namespace: "test", kind: "kv", key: "contended")
        let outcomes = try await withThrowingTaskGroup(of: ActivationOutcome.self) { group in
            for attempt in 0..<50 {
                let store = stores[attempt % 5]
                let claimant = claimants[attempt]
                group.addTask {
                    try await store.activate(ActivationRequest(actor: target, node: claimant))
                }
            }
            var outcomes: [ActivationOutcome] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        let grants = outcomes.compactMap { outcome -> Registration? in
            if case .granted(let registration, _) = outcome { return registration }
            return nil
        }
        #expect(grants.count == 1)
        #expect(grants.first?.epoch == 1)
        for outcome in outcomes {
            if case .ownedElsewhere(let owner) = outcome { #expect(owner == grants.first?.owner) }
        }
        let records = try await stores[0].registrations(kind: "kv", limit: 10)
        #expect(records.count == 1)
        #expect(records.first?.owner == grants.first?.owner)
        for store in stores { await store.close() }
    }

    @Test func pipelinedBatchesAreMergedAndApplyInOrder() async throws {
        let store = try await openStore()
        try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let (registration, _) = try granted(
            try await store.activate(
                ActivationRequest(actor: ActorID(namespace: "t", kind: "kv", key: "p"), node: node)))
        let completed = Mutex<[Int64]>([])
        let failures = Mutex<[StoreError]>([])
        let before = store.commitStatementCount
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Atomic<Int>(8)
            for sequence in Int64(1)...8 {
                // Batch n writes its own key and overwrites "shared"; batch 5 deletes "k2".
                var operations = [put("k\(sequence)", "v\(sequence)"), put("shared", "\(sequence)")]
                if sequence == 5 { operations.append(put("k2", nil)) }
                store.commit(CommitBatch(registration: registration, sequence: sequence, operations: operations)) { result in
                    completed.withLock { $0.append(sequence) }
                    if case .failure(let error) = result { failures.withLock { $0.append(error) } }
                    if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.resume() }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(completed.withLock { $0 } == Array(1...8))
        // The first batch runs alone; the seven behind it are merged.
        #expect(store.commitStatementCount - before < 8)
        // The sequence went on to 8: an empty batch 9 follows it; batch 9 again is done
        // already (an attempt whose answer was lost) and writes nothing ("late" stays out).
        try await store.commit(CommitBatch(registration: registration, sequence: 9, operations: []))
        try await store.commit(CommitBatch(registration: registration, sequence: 9, operations: [put("late", "x")]))
        let skipped = await #expect(throws: StoreError.self) {
            try await store.commit(CommitBatch(registration: registration, sequence: 11, operations: [put("late", "x")]))
        }
        #expect(skipped?.code == .predecessorMissing)
        let (_, rows) = try granted(
            try await store.activate(
                ActivationRequest(actor: registration.actor, node: node)))
        var expected = [ModuleRow(module: "kv", key: bytes("k1"), value: bytes("v1"))]
        expected += (3...8).map { ModuleRow(module: "kv", key: bytes("k\($0)"), value: bytes("v\($0)")) }
        expected.append(ModuleRow(module: "kv", key: bytes("shared"), value: bytes("8")))
        #expect(rows == expected)
        #expect(try await store.registrations(kind: nil, limit: 10).map(\.actor) == [registration.actor])
        #expect(try await store.registrations(kind: "other", limit: 10).isEmpty)
        await store.close()
    }

    @Test func mergedGroupFailsAsAWholeWhenFenced() async throws {
        let store = try await openStore()
        try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let actor = ActorID(namespace: "t", kind: "kv", key: "f")
        let (old, _) = try granted(try await store.activate(ActivationRequest(actor: actor, node: node)))
        _ = try granted(try await store.activate(ActivationRequest(actor: actor, node: node)))
        let codes = Mutex<[StoreError.Code]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Atomic<Int>(4)
            for sequence in Int64(1)...4 {
                store.commit(CommitBatch(registration: old, sequence: sequence, operations: [put("k\(sequence)", "x")])) { result in
                    if case .failure(let error) = result { codes.withLock { $0.append(error.code) } }
                    if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done.resume() }
                }
            }
        }
        #expect(codes.withLock { $0 } == [.fenced, .fenced, .fenced, .fenced])
        let (_, rows) = try granted(try await store.activate(ActivationRequest(actor: actor, node: node)))
        #expect(rows.isEmpty)
        await store.close()
    }

    /// The server goes away while commits are issued and comes back: callers see
    /// `unavailable` or success, the same store object works again, and nothing that was
    /// acknowledged is lost.
    @Test(.timeLimit(.minutes(2))) func serverPauseIsSurvivedAndNothingAcknowledgedIsLost() async throws {
        guard ProcessInfo.processInfo.environment[LocalPostgresServer.urlVariable] == nil else {
            print("SKIPPED: pausing the server is not supported with \(LocalPostgresServer.urlVariable)")
            return
        }
        let server = try await TestPostgres.startServer()
        let url = try await server.createDatabase(named: "pause_test")
        let store = try await openStore(url: url) { $0.leaseTimeout = .seconds(1) }
        try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let actor = ActorID(namespace: "t", kind: "kv", key: "pause")
        var (registration, _) = try granted(
            try await store.activate(ActivationRequest(actor: actor, node: node)))

        var acknowledged: [String: String] = [:]
        var sequence: Int64 = 1
        var counter = 0
        /// One commit of a new key; records it if acknowledged, returns the error if not.
        func commitNext() async -> StoreError? {
            counter += 1
            let key = "key-\(counter)"
            do {
                try await store.commit(CommitBatch(registration: registration, sequence: sequence, operations: [put(key, "\(counter)")]))
                acknowledged[key] = "\(counter)"
                sequence += 1
                return nil
            } catch {
                return error
            }
        }
        for _ in 0..<20 { #expect(await commitNext() == nil) }

        // Pause while commits keep coming.
        let pausing = Task { try await server.pause() }
        var failures: [StoreError] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let error = await commitNext() {
                failures.append(error)
                // After an unacknowledged commit the sequence is unknown: stop writing.
                break
            }
        }
        try await pausing.value
        // Now the server is down for certain.
        let whileDown = await commitNext()
        #expect(whileDown?.code == .unavailable || whileDown?.code == .outcomeUnknown)
        if let whileDown { failures.append(whileDown) }
        #expect(!failures.isEmpty)
        print("pause test: \(acknowledged.count) commits acknowledged, then \(failures.map { "\($0.code)" })")
        for failure in failures {
            #expect(failure.isRetryable, "\(failure)")
            #expect(
                failure.code == .unavailable || failure.code == .outcomeUnknown || failure.code == .predecessorMissing, "\(failure)")
            #expect(!failure.message.contains("password"))
        }

        try await server.resume()
        // The pool reconnects by itself: poll (with a deadline) until a claim goes through.
        var rows: [ModuleRow]?
        let back = ContinuousClock.now + .seconds(60)
        while rows == nil && ContinuousClock.now < back {
            do {
                let outcome = try await store.activate(ActivationRequest(actor: actor, node: node))
                let (newRegistration, newRows) = try granted(outcome)
                registration = newRegistration
                rows = newRows
            } catch let error as StoreError {
                #expect(error.code == .unavailable, "\(error)")
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let stored = try #require(rows, "the store did not recover after the server came back")
        let found = Dictionary(stored.map { (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }) {
            a, _ in a
        }
        for (key, value) in acknowledged {
            #expect(found[key] == value, "acknowledged \(key) lost")
        }
        // New commits on the same store object succeed.
        sequence = 1
        #expect(await commitNext() == nil)
        let (_, after) = try granted(try await store.activate(ActivationRequest(actor: actor, node: node)))
        #expect(after.contains(ModuleRow(module: "kv", key: bytes("key-\(counter)"), value: bytes("\(counter)"))))
        await store.close()
        TestPostgres.forget(server)
        await server.stop()
    }

    @Test func foreignDatabaseIsRefused() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        try await execute(url, "CREATE TABLE invoices (id BIGINT PRIMARY KEY, amount NUMERIC)")
        let error = await #expect(throws: StoreError.self) { _ = try await openStore(url: url) }
        #expect(error?.code == .notADNADatabase)

        let foreignMeta = try #require(try await TestPostgres.freshDatabase())
        try await execute(foreignMeta, "CREATE TABLE dna_meta (id INT)")
        let metaError = await #expect(throws: StoreError.self) { _ = try await openStore(url: foreignMeta) }
        #expect(metaError?.code == .notADNADatabase)
    }

    @Test func newerSchemaIsRefused() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        await (try await openStore(url: url)).close()
        try await execute(url, "UPDATE dna_meta SET value = '999' WHERE key = 'schema_version'")
        let error = await #expect(throws: StoreError.self) { _ = try await openStore(url: url) }
        #expect(error?.code == .schemaTooNew)
    }

    @Test func aVersion2DatabaseIsMigrated() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        await (try await openStore(url: url)).close()
        try await execute(url, "ALTER TABLE dna_nodes DROP COLUMN labels")
        try await execute(url, "ALTER TABLE dna_nodes DROP COLUMN rebalance_requested")
        for table in ["dna_streams", "dna_partitions", "dna_partition_edges", "dna_records", "dna_producers", "dna_stream_progress"] {
            try await execute(url, "DROP TABLE \(table)")
        }
        try await execute(url, "UPDATE dna_meta SET value = '2' WHERE key = 'schema_version'")
        try await execute(
            url, "INSERT INTO dna_nodes (node_id, cluster, address, state, started_ms, heartbeat_ms) VALUES ('old', 'c', 'x', 'up', 0, 0)")
        let store = try await openStore(url: url)
        try await store.join(node: NodeID(rawValue: "new"), cluster: "c", address: "y", failureTimeout: .seconds(9), labels: ["eu"])
        let records = try await store.nodes(cluster: "c")
        #expect(records.first { $0.id.rawValue == "old" }?.labels == [])
        #expect(records.first { $0.id.rawValue == "new" }?.labels == ["eu"])
        // Version 4: streams; version 5: parked consumers.
        try await store.createStream(StreamName(name: "s"), partitions: 1, retention: StreamRetention())
        #expect(try await store.resumeConsumer("stage", of: StreamName(name: "s"), partition: nil) == 0)
        await store.close()
    }

    @Test func storesOpeningTogetherShareOneSchema() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        let stores = try await withThrowingTaskGroup(of: PostgresStore.self) { group in
            for _ in 0..<6 { group.addTask { try await openStore(url: url) } }
            var stores: [PostgresStore] = []
            for try await store in group { stores.append(store) }
            return stores
        }
        #expect(stores.count == 6)
        for store in stores { await store.close() }
    }

    @Test(arguments: [
        "mysql://u@h/db", "postgres://h/db", "postgres://u@/db", "postgres://u@h", "postgres://u@h:99999/db",
        "postgres://u:secret@h:5432/db?sslmode=bogus", "not a url",
    ])
    func badURLIsAnInvalidArgument(url: String) throws {
        let error = #expect(throws: StoreError.self) { _ = try PostgresStore.Configuration(url: url) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("secret") == false)
    }

    @Test func goodURLsParse() throws {
        let full = try PostgresStore.Configuration(url: "postgresql://alice:p%40ss@db.example:6543/dna?sslmode=require")
        #expect(full.username == "alice")
        #expect(full.password == "p@ss")
        #expect(full.host == "db.example")
        #expect(full.port == 6543)
        #expect(full.database == "dna")
        #expect(full.tls == .require)
        #expect(!full.redactedURL.contains("p@ss"))
        let plain = try PostgresStore.Configuration(url: "postgres://bob@127.0.0.1/x")
        #expect(plain.port == 5432)
        #expect(plain.password == nil)
        #expect(plain.pool.maximumConnections == 8)
    }

    @Test func thePoolsOwnOptionsPassThroughAndTheStoresSessionSettingsWin() throws {
        var configuration = try PostgresStore.Configuration(url: "postgres://u@db.example/dna?sslmode=require")
        configuration.pool.minimumConnections = 2
        configuration.pool.tlsServerName = "primary.db.example"
        configuration.pool.additionalStartupParameters = [("application_name", "orders"), ("lock_timeout", "0")]
        configuration.lockTimeout = .seconds(3)
        let client = try configuration.clientConfiguration()
        let connection = try configuration.connectionConfiguration()
        #expect(client.options.minimumConnections == 2)
        #expect(client.options.maximumConnections == 8)
        #expect(connection.options.tlsServerName == "primary.db.example")
        for parameters in [client.options.additionalStartupParameters, connection.options.additionalStartupParameters] {
            #expect(parameters.filter { $0.0 == "lock_timeout" }.map(\.1) == ["3000"], "the store's lock timeout, once")
            #expect(parameters.contains { $0 == ("application_name", "orders") })
        }
        configuration.pool.minimumConnections = 9
        let error = #expect(throws: StoreError.self) { _ = try PostgresStore(configuration: configuration) }
        #expect(error?.code == .invalidArgument)
    }

    @Test func operationsAfterCloseFailClosed() async throws {
        let store = try await openStore()
        await store.close()
        let error = await #expect(throws: StoreError.self) {
            try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        }
        #expect(error?.code == .closed)
    }

    @Test func unreachableServerIsUnavailable() async throws {
        var configuration = try PostgresStore.Configuration(url: "postgres://dna:topsecret@127.0.0.1:1/none")
        configuration.pool.connectTimeout = .seconds(2)
        let error = await #expect(throws: StoreError.self) { try await PostgresStore(configuration: configuration).open() }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("topsecret") == false)
    }

    func execute(_ url: String, _ sql: String) async throws {
        try await LocalPostgresServer.execute(sql, on: url)
    }

    /// A connection of its own to the database at `url`, as another application's (for
    /// tests that hold a transaction open beside the store's).
    static func connect(_ url: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            configuration: try PostgresStore.Configuration(url: url).connectionConfiguration(), id: 0,
            logger: Logger(label: "test-application"))
    }
}

extension PostgresStore {
    /// A store whose `run()` runs in a task of its own until `close()`, once open (tests use
    /// stores without a node).
    static func running(_ configuration: Configuration) async throws -> PostgresStore {
        let store = try PostgresStore(configuration: configuration)
        let running = Task { try await store.run() }
        do {
            try await store.open()
        } catch {
            running.cancel()
            throw error
        }
        return store
    }
}
