@testable import DNAPostgres
import DNAStore
import DNATesting
import Logging
import PostgresNIO
import Synchronization
import DNATestSupport
import Testing

/// How stream operations on PostgreSQL share the partitions' row locks: a trim holds one
/// partition's for a page of deletes, and every transaction takes them in one order.
@Suite("PostgreSQL stream locks", .integration, .serialized, .enabled(if: TestPostgres.isAvailable))
struct PostgresStreamLockTests {
    let helpers = PostgresStoreTests()
    let logger = Logger(label: "test-application")

    /// Defect 7: a partition far larger than one trim transaction is trimmed to its
    /// retention while appends to it go on, none waiting past the lock timeout, and no
    /// statement of the trim runs into the statement timeout.
    @Test(.timeLimit(.minutes(3))) func aLargePartitionIsTrimmedWhileAppendsGoOn() async throws {
        // The default lock timeout (2 s); a statement timeout far below the default.
        let store = try await helpers.openStore { $0.statementTimeout = .seconds(2) }
        let stream = StreamName(namespace: "t", name: "big")
        try await store.createStream(stream, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 1_000))
        // 100 bytes a record: the retention keeps the newest ten.
        func records(_ count: Int) -> [StreamAppendRecord] {
            (0..<count).map { _ in
                StreamAppendRecord(key: Array("key-000000".utf8), value: [UInt8](repeating: 0x61, count: 90), partition: 0)
            }
        }
        let stored = 200_000
        for _ in 0..<(stored / 5_000) { _ = try await store.append(records(5_000), to: stream, producer: nil) }

        let trimmed = Atomic<Bool>(false)
        let appender = Task { () -> (appended: Int, failures: [String]) in
            var appended = 0
            var failures: [String] = []
            while !trimmed.load(ordering: .acquiring) {
                do {
                    _ = try await store.append(records(1), to: stream, producer: nil)
                    appended += 1
                } catch {
                    failures.append("\(error)")
                }
            }
            return (appended, failures)
        }
        let started = ContinuousClock.now
        let deleted = try await store.trimStreams()
        let took = ContinuousClock.now - started
        trimmed.store(true, ordering: .releasing)
        let (appended, failures) = await appender.value
        print("trim test: deleted \(deleted) records in \(took) while \(appended) appends went on")
        #expect(failures.isEmpty, "appends failed during the trim: \(failures.prefix(3))")
        #expect(appended > 0, "no append ran during the trim: the test proved nothing")
        #expect(deleted >= stored - 10)
        let partition = try #require(try await store.streamStatus(stream).partitions.first)
        #expect(partition.firstSequence > Int64(stored - 10))
        await store.close()
    }

    /// Defect 7: two batches appending to the same two streams in opposite orders. Another
    /// session holds the first stream's partition, so both queue on it; taking the streams
    /// in their batch's order, the second would hold the other stream meanwhile, and the
    /// two would wait for each other once the first stream is free.
    @Test(.timeLimit(.minutes(2))) func batchesAppendingToTwoStreamsInOppositeOrdersDoNotDeadlock() async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        let store = try await helpers.openStore(url: url)
        let node = helpers.node
        try await store.join(node: node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
        let first = StreamName(namespace: "t", name: "first")
        let second = StreamName(namespace: "t", name: "second")
        for stream in [first, second] { try await store.createStream(stream, partitions: 1, retention: StreamRetention()) }
        func batch(_ key: String, appendingTo streams: [StreamName]) async throws -> CommitBatch {
            let (registration, _) = try granted(
                try await store.activate(ActivationRequest(actor: ActorID(namespace: "t", kind: "stage", key: key), node: node)))
            return CommitBatch(
                registration: registration, sequence: 1, operations: [helpers.put("k", "v")],
                streams: StreamEffects(
                    appends: streams.map {
                        StreamEffects.Append(stream: $0, records: [StreamAppendRecord(key: Array(key.utf8), value: [1])])
                    },
                    progress: []))
        }
        let forwards = try await batch("forwards", appendingTo: [first, second])
        let backwards = try await batch("backwards", appendingTo: [second, first])

        let holder = try await PostgresStoreTests.connect(url)
        let observer = try await PostgresStoreTests.connect(url)
        func waitingOnLocks() async throws -> Int {
            var count = 0
            for try await value in try await observer.query(
                "SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                logger: logger
            ).decode(Int.self) {
                count = value
            }
            return count
        }
        try await holder.query("BEGIN", logger: logger)
        try await holder.query(
            """
            SELECT 1 FROM dna_partitions p JOIN dna_streams s ON s.stream_id = p.stream_id
            WHERE s.name = 'first' FOR UPDATE OF p
            """, logger: logger)
        let forwardsCommit = Task { try await store.commit(forwards) }
        #expect(try await eventuallyWaiting(1, waitingOnLocks))
        let backwardsCommit = Task { try await store.commit(backwards) }
        #expect(try await eventuallyWaiting(2, waitingOnLocks))
        try await holder.query("COMMIT", logger: logger)

        let outcomes = [await forwardsCommit.result, await backwardsCommit.result]
        for outcome in outcomes {
            if case .failure(let error) = outcome { Issue.record("a batch failed: \(error)") }
        }
        for stream in [first, second] {
            let records = try await store.readStream(stream, partition: 0, from: 1, limit: 10)
            #expect(Set(records.map { String(decoding: $0.key, as: UTF8.self) }) == ["forwards", "backwards"])
        }
        try await holder.close()
        try await observer.close()
        await store.close()
    }

    /// Whether `count` sessions come to wait on a lock within ten seconds (polled: the
    /// server offers no event for it).
    private func eventuallyWaiting(_ count: Int, _ waiting: () async throws -> Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await waiting() >= count { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
