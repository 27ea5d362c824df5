@_spi(StoreEngine) import DNAStore
import DNAStore
import DNATesting
import Foundation
import DNATestSupport
import Testing

/// Streams on every engine: the same contract.
@Suite("Streams in the store (SQLite, in-memory and PostgreSQL)", .integration, .serialized)
struct StreamStoreTests {
    let stream = StreamName(namespace: "test", name: "readings")

    func record(_ key: String, _ value: String, partition: Int? = nil) -> StreamAppendRecord {
        StreamAppendRecord(key: Array(key.utf8), value: Array(value.utf8), partition: partition)
    }

    @Test(arguments: Engine.allCases)
    func producersMadeForOneAppendAreForgottenAfterAnHour(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        try await store.createStream(stream, partitions: 1, retention: StreamRetention())
        let now = WallClockTime.now.milliseconds
        let old = StreamProducer(id: StreamProducer.oneAppendBound(now - 2 * 3_600_000) + "/old", firstSequence: 1)
        let recent = StreamProducer.forOneAppend(atMilliseconds: now)
        let mine = StreamProducer(id: "gateway-1", firstSequence: 1)
        for producer in [old, recent, mine] { _ = try await store.append([record("k", "v")], to: stream, producer: producer) }
        _ = try await store.trimStreams()
        // Sent again: only the producer made for one append over an hour ago is forgotten.
        let again = try await [old, recent, mine].asyncMap { try await store.append([record("k", "v")], to: stream, producer: $0) }
        #expect(again.map { $0[0].duplicate } == [false, true, true])
    }

    @Test(arguments: Engine.allCases)
    func recordsAreAppendedInOrderPerPartitionAndReadBack(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        try await store.createStream(stream, partitions: 4, retention: StreamRetention(maxAge: .seconds(3600)))
        let status = try await store.streamStatus(stream)
        #expect(status.partitions.map(\.partition) == [0, 1, 2, 3])
        #expect(status.partitions.allSatisfy { $0.isOpen && $0.nextSequence == 1 && $0.length == 0 })
        #expect(status.partitions.first?.keyLow == 0 && status.partitions.last?.keyHigh == UInt32.max)
        #expect(status.retention.maxAge == .seconds(3600))
        // One key always goes to one partition, numbered 1, 2, 3 there.
        let first = try await store.append([record("device-7", "a"), record("device-7", "b")], to: stream, producer: nil)
        let second = try await store.append([record("device-7", "c")], to: stream, producer: nil)
        let partition = first[0].partition
        #expect(first.map(\.partition) == [partition, partition] && second[0].partition == partition)
        #expect(first.map(\.sequence) == [1, 2] && second[0].sequence == 3)
        let hash = StreamKeyHash.hash(Array("device-7".utf8))
        let range = status.partitions[partition]
        #expect(range.keyLow <= hash && hash <= range.keyHigh)
        let read = try await store.readStream(stream, partition: partition, from: 2, limit: 10)
        #expect(read.map { String(decoding: $0.value, as: UTF8.self) } == ["b", "c"])
        #expect(read.map(\.sequence) == [2, 3])
        #expect(read.allSatisfy { $0.key == Array("device-7".utf8) && $0.appendedMilliseconds > 0 })
        // Named partitions, and many keys spread over all four.
        let named = try await store.append([record("x", "v", partition: 3)], to: stream, producer: nil)
        #expect(named[0].partition == 3)
        let spread = try await store.append((0..<200).map { record("key-\($0)", "v") }, to: stream, producer: nil)
        #expect(Set(spread.map(\.partition)) == [0, 1, 2, 3])
        let after = try await store.streamStatus(stream)
        #expect(after.partitions.reduce(0) { $0 + $1.length } == 204)
        #expect(after.partitions[partition].bytes >= 3 * Int64("device-7".utf8.count + 1))
        // At the end: nothing, and no error.
        #expect(try await store.readStream(stream, partition: 3, from: after.partitions[3].nextSequence, limit: 5).isEmpty)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func aRetriedAppendOfAProducerIsStoredOnce(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        try await store.createStream(stream, partitions: 2, retention: StreamRetention())
        let batch = [record("a", "1"), record("b", "2"), record("c", "3")]
        let stored = try await store.append(batch, to: stream, producer: StreamProducer(id: "sensor-gw", firstSequence: 1))
        #expect(stored.allSatisfy { !$0.duplicate })
        let retried = try await store.append(batch, to: stream, producer: StreamProducer(id: "sensor-gw", firstSequence: 1))
        #expect(retried.allSatisfy { $0.duplicate })
        // Overlapping: the first is a repeat, the second new.
        let overlap = try await store.append(
            [record("c", "3"), record("d", "4")], to: stream, producer: StreamProducer(id: "sensor-gw", firstSequence: 3))
        #expect(overlap.map(\.duplicate) == [true, false])
        // Another producer is counted apart.
        let other = try await store.append([record("a", "1")], to: stream, producer: StreamProducer(id: "other", firstSequence: 1))
        #expect(!other[0].duplicate)
        let total = try await store.streamStatus(stream).partitions.reduce(0) { $0 + $1.length }
        #expect(total == 5)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func aSplitClosesThePartitionAndItsKeysGoToTheChildren(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        try await store.createStream(stream, partitions: 2, retention: StreamRetention())
        let before = try await store.append((0..<50).map { record("key-\($0)", "old") }, to: stream, producer: nil)
        let fromZero = before.filter { $0.partition == 0 }.count
        #expect(try await store.reshard(stream, .split(0)) == [2, 3])
        var status = try await store.streamStatus(stream)
        let (parent, low, high) = (status.partitions[0], status.partitions[2], status.partitions[3])
        #expect(!parent.isOpen && parent.nextSequence == Int64(fromZero) + 1, "the parent ends where it stood")
        #expect(low.isOpen && high.isOpen && low.parents == [0] && high.parents == [0])
        #expect(low.keyLow == parent.keyLow && low.keyHigh + 1 == high.keyLow && high.keyHigh == parent.keyHigh)
        // Keys of the closed partition now go to the child holding their hash; its records stay readable.
        let after = try await store.append((0..<50).map { record("key-\($0)", "new") }, to: stream, producer: nil)
        #expect(!after.contains { $0.partition == 0 })
        for (old, new) in zip(before, after) where old.partition == 0 { #expect(new.partition == 2 || new.partition == 3) }
        #expect(try await store.readStream(stream, partition: 0, from: 1, limit: 100).count == fromZero)
        // Naming the closed partition is refused; splitting it again too.
        await #expect(throws: StoreError.self) { _ = try await store.append([record("k", "v", partition: 0)], to: stream, producer: nil) }
        let again = await #expect(throws: StoreError.self) { _ = try await store.reshard(stream, .split(0)) }
        #expect(again?.code == .invalidArgument && again?.message.contains("closed already") == true)
        // Merge the two children back into one; partitions 1 and 3 are not adjacent... 2 and 3 are.
        let apart = await #expect(throws: StoreError.self) { _ = try await store.reshard(stream, .merge(2, 1)) }
        #expect(apart?.code == .invalidArgument)
        #expect(try await store.reshard(stream, .merge(3, 2)) == [4])
        status = try await store.streamStatus(stream)
        #expect(status.partitions.map(\.isOpen) == [false, true, false, false, true])
        #expect(status.partitions[4].parents.sorted() == [2, 3])
        #expect(status.partitions[4].keyLow == parent.keyLow && status.partitions[4].keyHigh == parent.keyHigh)
        let missing = await #expect(throws: StoreError.self) { _ = try await store.reshard(stream, .split(9)) }
        #expect(missing?.code == .notFound)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func retentionKeepsWhatALaggingConsumerHasNotRead(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        // Records of 10 bytes (1-byte key, 9-byte value); at most 30 bytes kept per partition.
        try await store.createStream(stream, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 30))
        _ = try await store.append((1...10).map { record("k", "value-\($0 % 10)-x") }, to: stream, producer: nil)
        try await store.commitProgress(consumer: "slow", stream: stream, partition: 0, next: 3)
        #expect(try await store.trimStreams() == 2, "only what the slow consumer read")
        var status = try await store.streamStatus(stream)
        #expect(status.partitions[0].firstSequence == 3 && status.partitions[0].bytes == 80)
        #expect(status.consumers["slow"]?[0] == 3 && status.lag(of: "slow", partition: 0) == 8)
        let trimmed = await #expect(throws: StoreError.self) { _ = try await store.readStream(stream, partition: 0, from: 1, limit: 5) }
        #expect(trimmed?.code == .invalidArgument && trimmed?.message.contains("retention") == true)
        // It catches up: the limit applies.
        try await store.commitProgress(consumer: "slow", stream: stream, partition: 0, next: 11)
        #expect(try await store.trimStreams() == 5)
        status = try await store.streamStatus(stream)
        #expect(status.partitions[0].firstSequence == 8 && status.partitions[0].length == 3 && status.lag(of: "slow", partition: 0) == 0)
        #expect(try await store.trimStreams() == 0)
        // A consumer gone for good holds nothing back once forgotten.
        _ = try await store.append((1...4).map { record("k", "value-\($0 % 10)-x") }, to: stream, producer: nil)
        try await store.commitProgress(consumer: "gone", stream: stream, partition: 0, next: 8)
        #expect(try await store.trimStreams() == 0)
        #expect(try await store.forgetConsumer("gone", of: stream) == 1)
        // Down to what "slow" has not read (from 11): 8, 9 and 10 go.
        #expect(try await store.trimStreams() == 3)
        #expect(try await store.forgetConsumer("gone", of: stream) == 0)
        // A stream that may drop unread records does, whatever its consumers.
        let lossy = StreamName(namespace: "test", name: "lossy")
        try await store.createStream(lossy, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 30, dropUnconsumed: true))
        _ = try await store.append((1...10).map { record("k", "value-\($0 % 10)-x") }, to: lossy, producer: nil)
        try await store.commitProgress(consumer: "slow", stream: lossy, partition: 0, next: 1)
        #expect(try await store.trimStreams() == 7)
        // Bad checkpoints.
        let past = await #expect(throws: StoreError.self) {
            try await store.commitProgress(consumer: "c", stream: stream, partition: 0, next: 99)
        }
        #expect(past?.code == .invalidArgument)
        let nowhere = await #expect(throws: StoreError.self) {
            try await store.commitProgress(consumer: "c", stream: stream, partition: 5, next: 1)
        }
        #expect(nowhere?.code == .notFound)
        await store.close()
    }

    /// A consumer still reading a split's parent: the 200 records appended to the children
    /// wait for it (the split gave it a checkpoint at each child's start), under a size
    /// retention that would keep only about 40 of each child's.
    @Test(arguments: Engine.allCases)
    func aSplitsChildrenKeepWhatAConsumerOfTheStreamHasNotRead(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        // Parent records of 10 bytes; at most 400 bytes kept per partition.
        try await store.createStream(stream, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 400))
        _ = try await store.append((0..<50).map { record("p-\($0 % 10)", "value-x") }, to: stream, producer: nil)
        try await store.commitProgress(consumer: "stage", stream: stream, partition: 0, next: 21)
        #expect(try await store.reshard(stream, .split(0)) == [1, 2])
        _ = try await store.append((0..<200).map { record("child-\($0)", "value") }, to: stream, producer: nil)
        #expect(try await store.trimStreams() == 10, "only the parent's records past the limit that the stage read")
        var status = try await store.streamStatus(stream)
        #expect(status.consumers["stage"]?[1] == 1 && status.consumers["stage"]?[2] == 1)
        #expect(status.partitions[1].firstSequence == 1 && status.partitions[2].firstSequence == 1)
        #expect(status.partitions[1].length + status.partitions[2].length == 200)
        // A merge's child too.
        #expect(try await store.reshard(stream, .merge(1, 2)) == [3])
        status = try await store.streamStatus(stream)
        #expect(status.consumers["stage"]?[3] == 1)
        await store.close()
    }

    /// A consumer registered on a stream that holds records starts at each partition's first
    /// record kept, and retention keeps from there; on a stream that drops unread records,
    /// its checkpoint stays behind and the status shows what it lost.
    @Test(arguments: Engine.allCases)
    func aRegisteredConsumerKeepsEachPartitionFromItsStart(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        // Records of 10 bytes; at most 30 bytes kept per partition.
        try await store.createStream(stream, partitions: 2, retention: StreamRetention(maxBytesPerPartition: 30))
        _ = try await store.append((1...10).map { record("k", "value-\($0 % 10)-x", partition: 0) }, to: stream, producer: nil)
        #expect(try await store.trimStreams() == 7, "no consumer yet")
        #expect(try await store.registerConsumer("late", of: stream) == 2)
        #expect(try await store.registerConsumer("late", of: stream) == 0, "registered already")
        var status = try await store.streamStatus(stream)
        #expect(status.consumers["late"] == [0: 8, 1: 1])
        _ = try await store.append((1...5).map { record("k", "value-\($0 % 10)-x", partition: 0) }, to: stream, producer: nil)
        #expect(try await store.trimStreams() == 0, "nothing the late consumer has not read")
        try await store.commitProgress(consumer: "late", stream: stream, partition: 0, next: 13)
        #expect(try await store.trimStreams() == 5)
        // A checkpoint moved on is not moved back; missing ones are made.
        try await store.commitProgress(consumer: "half", stream: stream, partition: 1, next: 1)
        #expect(try await store.registerConsumer("half", of: stream) == 1)
        #expect(try await store.registerConsumer("late", of: stream) == 0)
        status = try await store.streamStatus(stream)
        #expect(status.consumers["half"] == [0: 13, 1: 1] && status.consumers["late"]?[0] == 13)
        // Dropping unread records: the checkpoint stays where it was.
        let lossy = StreamName(namespace: "test", name: "lossy")
        try await store.createStream(lossy, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 30, dropUnconsumed: true))
        _ = try await store.append((1...10).map { record("k", "value-\($0 % 10)-x") }, to: lossy, producer: nil)
        #expect(try await store.registerConsumer("reader", of: lossy) == 1)
        #expect(try await store.trimStreams() == 7)
        status = try await store.streamStatus(lossy)
        #expect(status.consumers["reader"]?[0] == 1 && status.droppedUnread(by: "reader", partition: 0) == 7)
        #expect(status.droppedUnread(by: "nobody", partition: 0) == 0)
        // Bad input.
        let unnamed = await #expect(throws: StoreError.self) { _ = try await store.registerConsumer("", of: stream) }
        #expect(unnamed?.code == .invalidArgument)
        let missing = await #expect(throws: StoreError.self) {
            _ = try await store.registerConsumer("c", of: StreamName(namespace: "test", name: "nothing"))
        }
        #expect(missing?.code == .notFound)
        await store.close()
    }

    @Test func retentionByAgeCountsFromTheStoresClock() {
        let partition = StreamPartitionStatus(
            partition: 0, isOpen: true, keyLow: 0, keyHigh: .max, firstSequence: 1, nextSequence: 5, bytes: 40, parents: [])
        let records: [(sequence: Int64, bytes: Int64, appended: Int64)] = [(1, 10, 1_000), (2, 10, 2_000), (3, 10, 3_000), (4, 10, 4_000)]
        let hour = StreamRetention(maxAge: .seconds(1))
        #expect(StreamRetentionRule.keepFrom(records, partition: partition, retention: hour, protectedFrom: nil, now: 4_500) == 4)
        #expect(StreamRetentionRule.keepFrom(records, partition: partition, retention: hour, protectedFrom: 2, now: 4_500) == 2)
        #expect(StreamRetentionRule.keepFrom(records, partition: partition, retention: hour, protectedFrom: nil, now: 10_000) == 5)
        #expect(
            StreamRetentionRule.keepFrom(records, partition: partition, retention: StreamRetention(), protectedFrom: nil, now: 10_000) == 1)
    }

    @Test(arguments: Engine.allCases)
    func badInputIsAClearErrorAndStoresNothing(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        func code(_ body: () async throws -> Void) async -> StoreError.Code? {
            do { try await body() } catch let error as StoreError { return error.code } catch { return nil }
            return nil
        }
        #expect(await code { try await store.createStream(stream, partitions: 0, retention: StreamRetention()) } == .invalidArgument)
        #expect(await code { try await store.createStream(stream, partitions: 5000, retention: StreamRetention()) } == .invalidArgument)
        try await store.createStream(stream, partitions: 2, retention: StreamRetention())
        #expect(await code { try await store.createStream(stream, partitions: 2, retention: StreamRetention()) } == .invalidArgument)
        let missing = StreamName(namespace: "test", name: "nothing")
        #expect(await code { _ = try await store.append([record("k", "v")], to: missing, producer: nil) } == .notFound)
        #expect(await code { _ = try await store.append([record("k", "v", partition: 9)], to: stream, producer: nil) } == .notFound)
        let huge = StreamAppendRecord(key: [1], value: [UInt8](repeating: 0, count: StreamAppendRecord.maxValueSize + 1))
        // All or none: the good record before the bad one is not stored either.
        #expect(await code { _ = try await store.append([record("k", "v"), huge], to: stream, producer: nil) } == .invalidArgument)
        #expect(
            await code { _ = try await store.append([record("k", "v")], to: stream, producer: StreamProducer(id: "", firstSequence: 1)) }
                == .invalidArgument)
        #expect(try await store.streamStatus(stream).partitions.allSatisfy { $0.length == 0 })
        #expect(await code { _ = try await store.readStream(missing, partition: 0, from: 1, limit: 1) } == .notFound)
        #expect(await code { _ = try await store.readStream(stream, partition: 7, from: 1, limit: 1) } == .notFound)
        #expect(await code { _ = try await store.readStream(stream, partition: 0, from: 5, limit: 1) } == .invalidArgument)
        #expect(await code { _ = try await store.readStream(stream, partition: 0, from: 1, limit: 0) } == .invalidArgument)
        #expect(await code { _ = try await store.streamStatus(missing) } == .notFound)
        await store.close()
    }
}

/// A batch's stream effects (a consumer stage's outputs and checkpoint) on every engine.
@Suite("Stream effects of commits (SQLite, in-memory and PostgreSQL)", .integration, .serialized)
struct StreamEffectsTests {
    let input = StreamName(namespace: "test", name: "in")
    let output = StreamName(namespace: "test", name: "out")
    let actor = ActorID(namespace: "test", kind: "stage", key: "0")
    let nodeA = NodeID(rawValue: "node-a")
    let nodeB = NodeID(rawValue: "node-b")

    func records(_ values: [String]) -> [StreamAppendRecord] {
        values.map { StreamAppendRecord(key: Array("k-\($0)".utf8), value: Array($0.utf8)) }
    }

    func batch(
        _ registration: Registration, _ sequence: Int64, to stream: StreamName, _ values: [String], next: Int64, parked: String? = nil
    )
        -> CommitBatch
    {
        CommitBatch(
            registration: registration, sequence: sequence,
            operations: [StorageOperation(module: "state", key: Array("seen".utf8), value: Array("\(next)".utf8))],
            streams: StreamEffects(
                appends: values.isEmpty ? [] : [StreamEffects.Append(stream: stream, records: records(values))],
                progress: [StreamEffects.Progress(consumer: "stage", stream: input, partition: 0, next: next, parked: parked)]))
    }

    func length(_ store: any ActorStore, _ stream: StreamName) async throws -> Int64 {
        try await store.streamStatus(stream).partitions.reduce(0) { $0 + $1.length }
    }

    @Test(arguments: Engine.allCases)
    func effectsCommitWithTheirBatchOnceAndNeverWhenFenced(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        for node in [nodeA, nodeB] {
            try await store.join(node: node, cluster: "c", address: node.rawValue, failureTimeout: .seconds(5), labels: [])
            try await store.heartbeat(node: node, state: .up, activations: 0)
        }
        try await store.createStream(input, partitions: 1, retention: StreamRetention())
        try await store.createStream(output, partitions: 2, retention: StreamRetention())
        _ = try await store.append(records(["a", "b", "c", "d"]), to: input, producer: nil)
        let (registration, _) = try granted(try await store.activate(ActivationRequest(actor: actor, node: nodeA)))

        // Applied with the batch; a retry of the same batch (its answer lost) appends nothing.
        try await store.commit(batch(registration, 1, to: output, ["x", "y", "z"], next: 3))
        try await store.commit(batch(registration, 1, to: output, ["x", "y", "z"], next: 3))
        #expect(try await length(store, output) == 3)
        #expect(try await store.streamStatus(input).consumers["stage"]?[0] == 3)

        // A batch whose effects cannot apply (no such stream) leaves nothing, not even its
        // storage writes or its sequence: the same sequence commits afterwards.
        await #expect(throws: StoreError.self) {
            try await store.commit(batch(registration, 2, to: StreamName(namespace: "test", name: "missing"), ["w"], next: 4))
        }
        #expect(try await store.streamStatus(input).consumers["stage"]?[0] == 3)
        try await store.commit(batch(registration, 2, to: output, ["w"], next: 4))
        #expect(try await length(store, output) == 4)

        // Parked, shown, resumed.
        try await store.commit(batch(registration, 3, to: output, [], next: 4, parked: "record 4 failed 5 times"))
        #expect(try await store.streamStatus(input).parked["stage"]?[0] == "record 4 failed 5 times")
        #expect(try await store.resumeConsumer("stage", of: input, partition: nil) == 1)
        #expect(try await store.streamStatus(input).parked.isEmpty)
        #expect(try await store.resumeConsumer("stage", of: input, partition: 0) == 0)

        // Fenced: the name moved on; the old holder's batch appends nothing.
        try await store.handOver(registration, to: nodeB, transientState: nil)
        await #expect(throws: StoreError.self) { try await store.commit(batch(registration, 4, to: output, ["late"], next: 5)) }
        #expect(try await length(store, output) == 4)
        #expect(try await store.streamStatus(input).consumers["stage"]?[0] == 4)
        let (moved, rows) = try granted(try await store.activate(ActivationRequest(actor: actor, node: nodeB)))
        #expect(moved.epoch > registration.epoch)
        #expect(rows.first { $0.module == "state" }?.value == Array("4".utf8), "the storage write committed with its effects")
        // The output was appended in order: x, y, z, then w, per key's partition.
        var values: [String] = []
        for partition in 0..<2 {
            values += try await store.readStream(output, partition: partition, from: 1, limit: 10).map {
                String(decoding: $0.value, as: UTF8.self)
            }
        }
        #expect(values.sorted() == ["w", "x", "y", "z"])
        await store.close()
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
