import Testing

@testable import DNA
@testable import DNAStore

/// The commit pipeline of an activation, on instants the tests choose.
@Suite("Commit pipeline")
struct CommitPipelineTests {
    static func at(_ milliseconds: Int64) -> DNAInstant { DNAInstant(nanoseconds: milliseconds * 1_000_000) }
    static let registration = Registration(
        actor: ActorID(namespace: "test", kind: "k", key: "a"), rowID: 1, owner: NodeID(rawValue: "n1"), epoch: 1)

    static func put(_ held: String, into pipeline: inout CommitPipeline<String>, now: Int64 = 0) -> CommitBatch {
        pipeline.append(
            [StorageOperation(module: "m", key: Array(held.utf8), value: [1])], held: [held], registration: registration, now: at(now),
            timeout: .seconds(10))
    }

    @Test("a later batch durable makes every earlier one durable; their replies go out oldest first")
    func durableInSequence() {
        var pipeline = CommitPipeline<String>()
        let first = Self.put("r1", into: &pipeline)
        let second = Self.put("r2", into: &pipeline)
        #expect(first.sequence == 1 && second.sequence == 2)
        #expect(pipeline.completed(sequence: 2, result: .success(())) == ["r1", "r2"])
        #expect(pipeline.completed(sequence: 1, result: .success(())) == nil, "a stale answer changes nothing")
        #expect(pipeline.advance(now: Self.at(1), reportDurable: false) == .none)
        #expect(pipeline.isEmpty)
    }

    @Test("a retryable failure is retried with back-off before its deadline, then the pipeline settles; a lost answer stays ambiguous")
    func retryThenSettle() {
        var pipeline = CommitPipeline<String>()
        _ = Self.put("r1", into: &pipeline)
        #expect(pipeline.completed(sequence: 1, result: .failure(StoreError(.outcomeUnknown, "lost"))) == [])
        #expect(pipeline.advance(now: Self.at(100), reportDurable: false) == .none)
        #expect(pipeline.retryTime == Self.at(105), "5 ms after the first failure")
        #expect(!pipeline.hasWork(now: Self.at(104)))
        guard case .retry(let batch) = pipeline.advance(now: Self.at(105), reportDurable: false) else {
            Issue.record("the retry's time came")
            return
        }
        #expect(batch.sequence == 1 && batch.timeout == .milliseconds(9_895), "what is left of its deadline")
        #expect(pipeline.completed(sequence: 1, result: .failure(StoreError(.unavailable, "down"))) == [])
        _ = pipeline.advance(now: Self.at(10_000), reportDurable: false)
        #expect(pipeline.isSettling, "the deadline passed")
        let (unsettled, cause, fenced) = pipeline.conclude()
        #expect(unsettled.map(\.held) == [["r1"]])
        #expect(unsettled.first?.ambiguous == true, "an attempt's answer was lost: outcome unknown, not 'not applied'")
        #expect(cause.code == .unavailable && !fenced)
        #expect(pipeline.isEmpty && !pipeline.isSettling)
    }

    @Test("fenced settles at once, without a retry")
    func fencedSettles() {
        var pipeline = CommitPipeline<String>()
        _ = Self.put("r1", into: &pipeline)
        _ = pipeline.completed(sequence: 1, result: .failure(StoreError(.fenced, "taken over")))
        #expect(pipeline.advance(now: Self.at(1), reportDurable: false) == .none)
        #expect(pipeline.isSettling && pipeline.retryTime == nil)
        #expect(pipeline.conclude().fenced)
    }
}
