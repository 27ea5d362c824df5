@testable import DNAPostgres
import DNAStore
import DNATesting
import DNATestSupport
import Testing

/// Writes other than commits whose answer is lost once they were sent: the caller is told
/// the outcome is unknown, never a refusal it would retry (defect 4 of issue 18, and every
/// write transaction since).
@Suite("PostgreSQL lost answers of writes", .integration, .serialized, .enabled(if: TestPostgres.isAvailable))
struct PostgresLostAnswerTests {
    let helpers = PostgresStoreTests()

    /// A store through a proxy that freezes the connection once the statement starting with
    /// `marker` was answered (the transaction's COMMIT then never reaches the server).
    private func frozenAfter(
        _ marker: String, _ body: (_ proxy: SyncDroppingProxy, _ store: PostgresStore) async throws -> Void
    ) async throws {
        let url = try #require(try await TestPostgres.freshDatabase())
        let direct = try PostgresStore.Configuration(url: url)
        let proxy = try await SyncDroppingProxy.start(upstreamHost: direct.host, upstreamPort: direct.port, marker: marker)
        do {
            let store = try await helpers.openStore(url: url) {
                $0.port = proxy.port
                $0.operationTimeout = .seconds(1)
            }
            try await body(proxy, store)
            await store.close()
        } catch {
            try? await proxy.shutdown()
            throw error
        }
        try await proxy.shutdown()
    }

    @Test(.timeLimit(.minutes(2))) func aHandOverWhoseAnswerIsLostIsOfUnknownOutcome() async throws {
        try await frozenAfter("UPDATE dna_actors SET owner = ") { proxy, store in
            try await store.join(node: helpers.node, cluster: "c", address: "a", failureTimeout: .seconds(5), labels: [])
            let (registration, _) = try granted(
                try await store.activate(ActivationRequest(actor: ActorID(namespace: "t", kind: "kv", key: "moved"), node: helpers.node)))
            proxy.armFreeze()
            let error = await #expect(throws: StoreError.self) {
                try await store.handOver(registration, to: NodeID(rawValue: "node-b"), transientState: nil)
            }
            #expect(proxy.firedCount == 1, "the hand-over was not cut off: the test proved nothing")
            // `unavailable` would tell `migrate`'s caller the actor certainly did not move.
            #expect(error?.code == .outcomeUnknown, "\(String(describing: error))")
        }
    }

    @Test(.timeLimit(.minutes(2))) func anAppendWhoseAnswerIsLostIsOfUnknownOutcome() async throws {
        try await frozenAfter("SELECT p.stream_id, p.partition_id") { proxy, store in
            let stream = StreamName(namespace: "t", name: "lost")
            try await store.createStream(stream, partitions: 1, retention: StreamRetention())
            proxy.armFreeze()
            let error = await #expect(throws: StoreError.self) {
                _ = try await store.append([StreamAppendRecord(key: Array("k".utf8), value: Array("v".utf8))], to: stream, producer: nil)
            }
            #expect(proxy.firedCount == 1, "the append was not cut off: the test proved nothing")
            // `unavailable` (retryable) would invite a retry that may store the records twice.
            #expect(error?.code == .outcomeUnknown, "\(String(describing: error))")
        }
    }

    /// Every write transaction, not only hand-overs and appends: a split whose answer is
    /// lost is of unknown outcome (`unavailable` would have a retry refused as "closed
    /// already" had the split been applied).
    @Test(.timeLimit(.minutes(2))) func aSplitWhoseAnswerIsLostIsOfUnknownOutcome() async throws {
        try await frozenAfter("UPDATE dna_partitions SET state = 'closed'") { proxy, store in
            let stream = StreamName(namespace: "t", name: "split")
            try await store.createStream(stream, partitions: 1, retention: StreamRetention())
            proxy.armFreeze()
            let error = await #expect(throws: StoreError.self) { _ = try await store.reshard(stream, .split(0)) }
            #expect(proxy.firedCount == 1, "the split was not cut off: the test proved nothing")
            #expect(error?.code == .outcomeUnknown, "\(String(describing: error))")
        }
    }
}
