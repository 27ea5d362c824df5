@testable import DNA
import DNAStore
import DNATesting
import DNATestSupport
import Testing
import Prometheus

/// Messages an activation queued but never handled when it stopped go on to wherever the
/// name is; what cannot is failed or counted, never dropped silently (defect 5 of issue 18).
@Suite("Messages an activation never handled", .integration, .serialized)
struct UndeliveredMessageTests {
    @Test(.timeLimit(.minutes(1))) func castsQueuedWhenTheLeaseRanOutGoOnToTheNextActivation() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 1) else { return }
        let node = cluster.nodes[0]
        let gate = Gate()
        TestHooks.holdActivation(of: "undelivered", until: gate)
        let ref = try node.ref(Recorder.self, key: "undelivered")
        // The activation claims the name under the node's lease, then waits in its
        // initialiser while the casts queue.
        for index in 0..<5 { try ref.cast(Recorder.Put(key: "k\(index)", value: "v\(index)")) }
        // The lease runs out and comes back as a new one: the waiting activation may not
        // serve under the old one and stops with its queue.
        cluster.stores[0].failHeartbeats(true)
        #expect(try await eventually { !node.holdsLease }, "the lease never ran out")
        cluster.stores[0].failHeartbeats(false)
        #expect(try await eventually { node.holdsLease }, "the lease never came back")
        gate.open()
        // Handled by the next activation of the name, in order.
        let (values, _) = try await retrying {
            try await (0..<5).asyncMap { try await ref.call(Recorder.Get(key: "k\($0)")) }
        }
        #expect(values == (0..<5).map { "v\($0)" }, "casts the stopped activation never handled were dropped")
        #expect(try await ref.call(Recorder.Activations()) == 2, "the first activation stopped without handling them")
        await cluster.shutdown()
    }
}

extension UndeliveredMessageTests {
    /// What `dna_casts_dropped_total{reason}` says now (the process's one registry).
    static func castsDropped(_ reason: String) -> Int {
        var text: [UInt8] = []
        TestMetrics.registry.emit(into: &text)
        let prefix = "dna_casts_dropped_total{reason=\"\(reason)\"} "
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix(prefix) {
            return Int(line.dropFirst(prefix.count)) ?? 0
        }
        return 0
    }

    @Test(.timeLimit(.minutes(1))) func castsOfABatchThatCertainlyDidNotCommitAreCounted() async throws {
        _ = TestMetrics.registry
        let before = Self.castsDropped("not_committed")
        let store = InMemoryStore()
        let node = try await makeNode(.custom(store), commitTimeout: .milliseconds(200))
        let ref = try node.ref(Recorder.self, key: "not-committed")
        try await ref.call(Recorder.Put(key: "first", value: "v"))
        store.setUnavailable(StoreError(.unavailable, "test outage"))
        for index in 0..<3 { try ref.cast(Recorder.Put(key: "k\(index)", value: "v")) }
        // Refused until their deadline: the batch goes back, its casts lost and counted.
        let failed = await #expect(throws: DNAError.self) { try await ref.call(Recorder.Put(key: "last", value: "v")) }
        #expect(failed?.code == .commitFailed)
        #expect(Self.castsDropped("not_committed") - before == 3)
        store.setUnavailable(nil)
        #expect(try await ref.call(Recorder.Get(key: "k0")) == nil, "not committed")
        await node.shutdown()
    }
}

/// Appends through a node are idempotent: a lost answer is sent again, stored once
/// (defect 4 of issue 18).
@Suite("Appends whose answer was lost", .integration, .serialized)
struct LostAppendAnswerTests {
    @Test func anAppendWithoutAProducerWhoseAnswerWasLostIsStoredOnce() async throws {
        let store = GatedStore(InMemoryStore())
        let node = try await makeNode(.custom(store))
        let stream = StreamName(namespace: "test", name: "lost-answers")
        try await store.createStream(stream, partitions: 1, retention: StreamRetention())
        let records = (0..<3).map { StreamAppendRecord(key: Array("k\($0)".utf8), value: Array("v".utf8)) }
        store.loseAppendAnswers(1)
        let positions = try await node.append(records, to: stream)
        #expect(positions.allSatisfy { $0.duplicate }, "the second attempt found what the first stored")
        let stored = try await store.readStream(stream, partition: 0, from: 1, limit: 100)
        #expect(stored.map(\.key) == records.map(\.key), "stored once, in order")
        // Every answer lost: the caller is told the outcome is unknown, never a refusal.
        store.loseAppendAnswers(3)
        let error = await #expect(throws: StoreError.self) { try await node.append(records, to: stream) }
        #expect(error?.code == .outcomeUnknown)
        #expect(try await store.readStream(stream, partition: 0, from: 1, limit: 100).count == 6, "once more, not three times")
        await node.shutdown()
    }

    /// Found by the runtime simulation with pipelines: a retry refused after a lost answer
    /// was reported as the refusal, though the first attempt had stored the records.
    @Test func anAppendWhoseRetryIsRefusedAfterALostAnswerIsReportedUnknown() async throws {
        let store = GatedStore(InMemoryStore())
        let node = try await makeNode(.custom(store))
        let stream = StreamName(namespace: "test", name: "lost-then-refused")
        try await store.createStream(stream, partitions: 1, retention: StreamRetention())
        store.loseAppendAnswers(1, thenRefuse: true)
        let error = await #expect(throws: StoreError.self) {
            try await node.append([StreamAppendRecord(key: [1], value: [1])], to: stream)
        }
        #expect(error?.code == .outcomeUnknown, "the first attempt stored the record: not 'certainly not stored'")
        #expect(try await store.readStream(stream, partition: 0, from: 1, limit: 100).count == 1)
        await node.shutdown()
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
