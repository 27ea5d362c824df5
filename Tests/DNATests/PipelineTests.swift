@testable import DNA
import DNAPostgres
import DNAExamples
import DNATesting
import Foundation
import Synchronization
import DNATestSupport
import Testing

/// Consumer stages: started by the cluster, exactly once between stages, in order per
/// partition, parents before children, a failing handler parked.
@Suite("Pipelines", .integration, .serialized, .timeLimit(.minutes(3)))
struct PipelineTests {
    static let cities = ["oslo", "lima", "pune", "kyiv", "baku"]

    /// Appends `count` readings (device `d<i % devices>`, amount `i % 7 + 1`) in chunks, as
    /// an idempotent producer; returns the expected totals per device and per city.
    static func feed(
        _ store: any ActorStore, count: Int, devices: Int = 50, producer: String = "feeder", from first: Int = 0, chunk: Int = 200
    ) async throws -> (devices: [String: ExamplePipeline.Total], cities: [String: ExamplePipeline.Total]) {
        var byDevice: [String: ExamplePipeline.Total] = [:]
        var byCity: [String: ExamplePipeline.Total] = [:]
        var index = first
        while index < first + count {
            let end = min(first + count, index + chunk)
            var records: [StreamAppendRecord] = []
            for i in index..<end {
                let device = "d\(i % devices)"
                let city = cities[(i % devices) % cities.count]
                let amount = Int64(i % 7 + 1)
                records.append(StreamAppendRecord(key: Array(device.utf8), value: ExamplePipeline.reading(city: city, amount: amount)))
                byDevice[device, default: .init()].count += 1
                byDevice[device, default: .init()].sum += amount
                byCity[city, default: .init()].count += 1
                byCity[city, default: .init()].sum += amount
            }
            _ = try await retrying {
                try await store.append(
                    records, to: ExamplePipeline.readings, producer: StreamProducer(id: producer, firstSequence: Int64(index + 1)))
            }
            index = end
        }
        return (byDevice, byCity)
    }

    static func createStreams(_ store: any ActorStore) async throws {
        try await store.createStream(ExamplePipeline.readings, partitions: ExamplePipeline.readingPartitions, retention: StreamRetention())
        try await store.createStream(ExamplePipeline.cityReadings, partitions: ExamplePipeline.cityPartitions, retention: StreamRetention())
    }

    /// The totals all consumers of a stage hold, added up.
    static func totals<S: StreamStage>(_ stage: S.Type, partitions: [Int], on node: Node) async throws -> [String: ExamplePipeline.Total] {
        var result: [String: ExamplePipeline.Total] = [:]
        for partition in partitions {
            let ref = try node.ref(S.self, key: String(partition), namespace: S.input.namespace)
            let part = try await retrying { try await ref.call(ExamplePipeline.Totals()) }.value
            for (key, total) in part {
                #expect(result[key] == nil, "\(key) is counted by two partitions")
                result[key] = total
            }
        }
        return result
    }

    @Test func recordsFlowThroughTwoStagesExactlyOnce() async throws {
        let directory = try TemporaryDirectory()
        let node = try await makeNode(
            .sqlite(path: directory.databasePath), actors: [DeviceTotals.self, CityTotals.self])
        try await Self.createStreams(node.store)
        let expected = try await Self.feed(node.store, count: 5_000)
        let done = try await eventuallyAsync(within: .seconds(60)) {
            let status = try await node.store.streamStatus(ExamplePipeline.cityReadings)
            let consumed = status.partitions.reduce(Int64(0)) { $0 + (status.consumers[CityTotals.kind.name]?[$1.partition] ?? 1) - 1 }
            return consumed == 5_000
        }
        #expect(done, "the second stage consumed all 5,000 forwarded readings")
        let devices = try await Self.totals(DeviceTotals.self, partitions: Array(0..<ExamplePipeline.readingPartitions), on: node)
        let cities = try await Self.totals(CityTotals.self, partitions: Array(0..<ExamplePipeline.cityPartitions), on: node)
        #expect(devices == expected.devices)
        #expect(cities == expected.cities)
        // Order per source partition: each city partition's records, read back, come in the
        // order their device partitions consumed the readings (checked by sequence).
        let status = try await node.store.streamStatus(ExamplePipeline.cityReadings)
        #expect(status.partitions.reduce(0) { $0 + $1.length } == 5_000, "each forwarded reading stored once")
        await node.shutdown()
    }
}

/// Polls an async condition until it holds or the time is up.
func eventuallyAsync(within limit: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        if ContinuousClock.now > deadline { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
}

/// The example pipeline on three `dna node` processes: killed and paused for real.
@Suite("Pipeline on dna node processes", .integration, .serialized, .timeLimit(.minutes(4)))
struct PipelineProcessTests {
    /// A store of the same database the processes use, for the test's own appends and reads.
    static func open(_ location: String) async throws -> (store: any ActorStore, stop: () async -> Void) {
        if location.hasPrefix("sqlite:") {
            var configuration = SQLiteStore.Configuration(path: String(location.dropFirst("sqlite:".count)))
            configuration.sharing = .shared
            let store = SQLiteStore(configuration: configuration)
            try await store.open()
            return (store, { await store.close() })
        }
        let store = try PostgresStore(configuration: .init(url: location))
        let running = Task { try await store.run() }
        try await store.open()
        return (
            store,
            {
                running.cancel()
                _ = await running.result
            }
        )
    }

    static func consumed(_ store: any ActorStore, _ stream: StreamName, by consumer: String) async throws -> Int64 {
        let status = try await store.streamStatus(stream)
        return status.partitions.reduce(Int64(0)) { $0 + (status.consumers[consumer]?[$1.partition] ?? 1) - 1 }
    }

    /// The node hosting the most consumers of `kind`, among `nodes`.
    static func busiest(_ nodes: [NodeProcess], kind: String, in store: any ActorStore) async throws -> NodeProcess? {
        let owners = try await store.registrations(kind: kind, limit: 1000).compactMap(\.owner?.rawValue)
        return nodes.max { a, b in owners.filter { $0 == a.id }.count < owners.filter { $0 == b.id }.count }
    }

    @Test func totalsAreExactAcrossASIGKILLAndASIGSTOPPastTheFailureTimeout() async throws {
        let directory = try TemporaryDirectory()
        let location = try await TestPostgres.freshDatabase() ?? ("sqlite:" + directory.databasePath)
        let (store, stop) = try await Self.open(location)
        try await PipelineTests.createStreams(store)
        var nodes: [NodeProcess] = []
        for _ in 0..<3 { nodes.append(try await NodeProcess.start(store: location)) }
        defer { for node in nodes { node.stop() } }
        let total = 20_000
        // Readings keep coming while nodes die.
        let feeding = Task { try await PipelineTests.feed(store, count: total, chunk: 100) }

        #expect(
            try await eventuallyAsync(within: .seconds(60)) {
                try await Self.consumed(store, ExamplePipeline.readings, by: DeviceTotals.kind.name) >= 3_000
            })
        let killed = try #require(try await Self.busiest(nodes, kind: DeviceTotals.kind.name, in: store))
        killed.kill()
        let survivors = nodes.filter { $0 !== killed }

        let before = try await Self.consumed(store, ExamplePipeline.readings, by: DeviceTotals.kind.name)
        #expect(
            try await eventuallyAsync(within: .seconds(60)) {
                try await Self.consumed(store, ExamplePipeline.readings, by: DeviceTotals.kind.name) >= before + 3_000
            })
        let paused = try #require(try await Self.busiest(survivors, kind: CityTotals.kind.name, in: store))
        let pausedOwns = try await store.registrations(kind: CityTotals.kind.name, limit: 1000).filter { $0.owner?.rawValue == paused.id }
        try #require(!pausedOwns.isEmpty, "the node to pause hosts no consumer: the pause would prove nothing")
        try await paused.pause()
        // Past its failure timeout (1.5 s) the others take its consumers over; it wakes after.
        #expect(
            try await eventuallyAsync(within: .seconds(30)) {
                try await store.registrations(kind: CityTotals.kind.name, limit: 1000).allSatisfy { $0.owner?.rawValue != paused.id }
            }, "the paused node's consumers were not taken over")
        paused.signal(SIGCONT)

        let expected = try await feeding.value
        #expect(
            try await eventuallyAsync(within: .seconds(120)) {
                try await Self.consumed(store, ExamplePipeline.cityReadings, by: CityTotals.kind.name) >= Int64(total)
            })
        let forwarded = try await store.streamStatus(ExamplePipeline.cityReadings).partitions.reduce(0) { $0 + $1.length }
        #expect(forwarded == Int64(total), "each reading forwarded exactly once")
        let client = try survivors[0].client()
        var devices: [String: ExamplePipeline.Total] = [:]
        for partition in 0..<ExamplePipeline.readingPartitions {
            let part = try await retrying(for: .seconds(30)) {
                try await client.call(ExamplePipeline.Totals(), kind: DeviceTotals.kind.name, key: "\(partition)")
            }
            devices.merge(part.value) { a, _ in a }
        }
        var cities: [String: ExamplePipeline.Total] = [:]
        for partition in 0..<ExamplePipeline.cityPartitions {
            let part = try await retrying(for: .seconds(30)) {
                try await client.call(ExamplePipeline.Totals(), kind: CityTotals.kind.name, key: "\(partition)")
            }
            cities.merge(part.value) { a, _ in a }
        }
        #expect(devices == expected.devices, "per device, the first stage counted each reading once")
        #expect(cities == expected.cities, "per city, the second stage counted each forwarded reading once")
        #expect(try await Self.consumed(store, ExamplePipeline.cityReadings, by: CityTotals.kind.name) == Int64(total))
        await client.shutdown()
        await stop()
    }
    /// The stage's leader dies with its node: another node's takes over (its alarm fires
    /// there) and starts the consumer of a partition that only now has records — nothing
    /// else would.
    @Test func aKilledLeaderIsReplacedAndStartsNewWork() async throws {
        let directory = try TemporaryDirectory()
        let location = try await TestPostgres.freshDatabase() ?? ("sqlite:" + directory.databasePath)
        let (store, stop) = try await Self.open(location)
        try await PipelineTests.createStreams(store)
        var nodes: [NodeProcess] = []
        for _ in 0..<3 { nodes.append(try await NodeProcess.start(store: location)) }
        defer { for node in nodes { node.stop() } }
        func readings(to partition: Int) -> [StreamAppendRecord] {
            (0..<10).map {
                StreamAppendRecord(key: Array("d\($0)".utf8), value: ExamplePipeline.reading(city: "oslo", amount: 1), partition: partition)
            }
        }
        func checkpoint(_ partition: Int) async throws -> Int64? {
            try await store.streamStatus(ExamplePipeline.readings).consumers[DeviceTotals.kind.name]?[partition]
        }
        _ = try await store.append(readings(to: 0), to: ExamplePipeline.readings, producer: nil)
        #expect(try await eventuallyAsync { try await checkpoint(0) == 11 })
        let leaders = try await store.registrations(kind: StageLeader.kind.name, limit: 10)
        let leader = try #require(leaders.first { $0.actor.key == DeviceTotals.kind.name }?.owner)
        let killed = try #require(nodes.first { $0.id == leader.rawValue })
        killed.kill()
        _ = try await store.append(readings(to: 5), to: ExamplePipeline.readings, producer: nil)
        #expect(try await eventuallyAsync(within: .seconds(30)) { try await checkpoint(5) == 11 })
        let now = try await store.registrations(kind: StageLeader.kind.name, limit: 10).first { $0.actor.key == DeviceTotals.kind.name }
        #expect(now?.owner != nil && now?.owner != leader, "another node's leader took over")
        await stop()
    }
}

/// Copies `src` to `dst` as "<partition>:<sequence>"; a record "bad" throws while the
/// stage's flag says so.
final class CopyStage: StreamStage {
    static let kind: ActorKind = "copy"
    static let input = StreamName(namespace: "test", name: "src")
    static let output = StreamName(namespace: "test", name: "dst")
    static let failBad = Atomic<Bool>(false)
    static var batchSize: Int { 10 }
    static var failurePolicy: StageFailurePolicy { StageFailurePolicy(attempts: 3, firstBackOff: .milliseconds(10)) }

    init(context: ActorContext) async throws {}

    func process(_ records: [StreamRecord], context: ActorContext) async throws {
        try Self.copy(records, to: Self.output, failing: Self.failBad.load(ordering: .relaxed), context: context)
    }

    static func copy(_ records: [StreamRecord], to output: StreamName, failing: Bool, context: ActorContext) throws {
        for record in records {
            if failing, record.value == Array("bad".utf8) { throw TestFailure(reason: "bad record \(record.sequence)") }
            try context.append(to: output, key: record.key, value: Array("\(record.partition):\(record.sequence)".utf8), partition: 0)
        }
    }
}

/// The same, for a stage that does not wait for parents (and its own output).
final class RelaxedCopyStage: StreamStage {
    static let kind: ActorKind = "relaxed-copy"
    static let input = CopyStage.input
    static let output = StreamName(namespace: "test", name: "dst-relaxed")
    static let failBad = Atomic<Bool>(false)
    static var batchSize: Int { 10 }
    static var waitsForParents: Bool { false }
    static var failurePolicy: StageFailurePolicy { StageFailurePolicy(attempts: 3, firstBackOff: .milliseconds(10)) }

    init(context: ActorContext) async throws {}

    func process(_ records: [StreamRecord], context: ActorContext) async throws {
        try CopyStage.copy(records, to: Self.output, failing: Self.failBad.load(ordering: .relaxed), context: context)
    }
}

@Suite("Pipeline stages: order, resharding, failures, drains", .integration, .serialized, .timeLimit(.minutes(3)))
struct StageBehaviourTests {
    func values(_ store: any ActorStore, _ stream: StreamName) async throws -> [(partition: Int, sequence: Int64)] {
        let status = try await store.streamStatus(stream)
        var result: [(Int, Int64)] = []
        for partition in status.partitions {
            var from = partition.firstSequence
            while from < partition.nextSequence {
                let page = try await store.readStream(stream, partition: partition.partition, from: from, limit: 1000)
                for record in page {
                    let parts = String(decoding: record.value, as: UTF8.self).split(separator: ":")
                    result.append((Int(parts[0])!, Int64(parts[1])!))
                }
                from = (page.last?.sequence ?? from) + 1
            }
        }
        return result
    }

    func records(_ count: Int, bad: Int? = nil, prefix: String, partition: Int? = nil) -> [StreamAppendRecord] {
        (0..<count).map { index in
            StreamAppendRecord(
                key: Array("\(prefix)-\(index)".utf8), value: Array((index == bad ? "bad" : "ok").utf8), partition: partition)
        }
    }

    /// A partition split before its consumer finished it: the strict stage parks on the bad
    /// record and leaves the children alone; resumed, it finishes the parent, then the
    /// children. The relaxed stage consumes the children while the parent is parked.
    @Test func childrenWaitForTheirParentsAndAFailingHandlerParksItsPartition() async throws {
        let directory = try TemporaryDirectory()
        CopyStage.failBad.store(true, ordering: .relaxed)
        RelaxedCopyStage.failBad.store(true, ordering: .relaxed)
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.namespace = "test"
        // Made before the node, so its stages find everything at once.
        let setup = SQLiteStore(configuration: .init(path: directory.databasePath))
        try await setup.open()
        try await setup.createStream(CopyStage.input, partitions: 1, retention: StreamRetention())
        try await setup.createStream(CopyStage.output, partitions: 1, retention: StreamRetention())
        try await setup.createStream(RelaxedCopyStage.output, partitions: 1, retention: StreamRetention())
        _ = try await setup.append(records(50, bad: 25, prefix: "parent"), to: CopyStage.input, producer: nil)
        #expect(try await setup.reshard(CopyStage.input, .split(0)) == [1, 2])
        _ = try await setup.append(records(50, prefix: "child"), to: CopyStage.input, producer: nil)
        await setup.close()

        let node = try await Node.started(configuration: configuration, actors: [CopyStage.self, RelaxedCopyStage.self])
        let store = node.store
        #expect(
            try await eventuallyAsync {
                let status = try await store.streamStatus(CopyStage.input)
                return status.parked[CopyStage.kind.name]?[0] != nil && status.parked[RelaxedCopyStage.kind.name]?[0] != nil
            })
        var status = try await store.streamStatus(CopyStage.input)
        #expect(status.consumers[CopyStage.kind.name]?[0] == 21, "two batches of ten before the bad record's batch")
        #expect(status.parked[CopyStage.kind.name]?[0]?.contains("records 21-30 failed 3 times") == true)
        // The relaxed stage has the children's 50 already, or gets them while parked.
        #expect(try await eventuallyAsync { try await values(store, RelaxedCopyStage.output).count == 70 })
        // Two of the leader's syncs later, the strict stage still has not touched the children.
        try await Task.sleep(for: .seconds(2.5))
        status = try await store.streamStatus(CopyStage.input)
        #expect(status.consumers[CopyStage.kind.name]?[1] == 1 && status.consumers[CopyStage.kind.name]?[2] == 1, "registered, not read")
        #expect(try await values(store, CopyStage.output).count == 20)

        CopyStage.failBad.store(false, ordering: .relaxed)
        #expect(try await store.resumeConsumer(CopyStage.kind.name, of: CopyStage.input, partition: 0) == 1)
        #expect(try await eventuallyAsync { try await values(store, CopyStage.output).count == 100 })
        let copied = try await values(store, CopyStage.output)
        let lastParent = try #require(copied.lastIndex { $0.partition == 0 })
        let firstChild = try #require(copied.firstIndex { $0.partition != 0 })
        #expect(lastParent < firstChild, "every record of the parent before any of its children")
        #expect(copied.filter { $0.partition == 0 }.map(\.sequence) == Array(1...50), "the parent's records once each, in order")
        #expect(copied.filter { $0.partition != 0 }.count == 50)
        status = try await store.streamStatus(CopyStage.input)
        #expect(status.parked[CopyStage.kind.name] == nil)
        await node.shutdown()
    }

    /// A size retention, and a parent the stage is still reading (parked on a bad record):
    /// the 200 records appended to the split's children wait for the stage, however much
    /// over the limit, and each is copied once it resumes.
    @Test func retentionKeepsASplitsChildrenUntilTheStageReadsThem() async throws {
        let directory = try TemporaryDirectory()
        CopyStage.failBad.store(true, ordering: .relaxed)
        let setup = SQLiteStore(configuration: .init(path: directory.databasePath))
        try await setup.open()
        try await setup.createStream(CopyStage.input, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 400))
        try await setup.createStream(CopyStage.output, partitions: 1, retention: StreamRetention())
        _ = try await setup.append(records(50, bad: 25, prefix: "parent"), to: CopyStage.input, producer: nil)
        await setup.close()
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.namespace = "test"
        let node = try await Node.started(configuration: configuration, actors: [CopyStage.self])
        let store = node.store
        #expect(try await eventuallyAsync { try await store.streamStatus(CopyStage.input).parked[CopyStage.kind.name]?[0] != nil })
        #expect(try await store.reshard(CopyStage.input, .split(0)) == [1, 2])
        _ = try await store.append(records(200, prefix: "child"), to: CopyStage.input, producer: nil)
        _ = try await store.trimStreams()
        let status = try await store.streamStatus(CopyStage.input)
        #expect(status.partitions[1].firstSequence == 1 && status.partitions[2].firstSequence == 1, "nothing of the children trimmed")
        #expect(status.partitions[1].length + status.partitions[2].length == 200)
        CopyStage.failBad.store(false, ordering: .relaxed)
        #expect(try await store.resumeConsumer(CopyStage.kind.name, of: CopyStage.input, partition: 0) == 1)
        #expect(try await eventuallyAsync { try await values(store, CopyStage.output).count == 250 })
        let copied = try await values(store, CopyStage.output)
        for child in [1, 2] {
            let sequences = copied.filter { $0.partition == child }.map(\.sequence)
            #expect(sequences == Array(1..<status.partitions[child].nextSequence), "child \(child): every record, once, in order")
        }
        await node.shutdown()
    }

    /// A stream that drops unread records, trimmed past the checkpoint of a stage parked on
    /// it: resumed, the stage moves on from the first record kept (counting the skip)
    /// rather than failing on the deleted ones.
    @Test func aStagePastWhosePositionRetentionDroppedMovesOn() async throws {
        let directory = try TemporaryDirectory()
        CopyStage.failBad.store(true, ordering: .relaxed)
        let setup = SQLiteStore(configuration: .init(path: directory.databasePath))
        try await setup.open()
        try await setup.createStream(
            CopyStage.input, partitions: 1, retention: StreamRetention(maxBytesPerPartition: 200, dropUnconsumed: true))
        try await setup.createStream(CopyStage.output, partitions: 1, retention: StreamRetention())
        _ = try await setup.append(records(50, bad: 25, prefix: "parent"), to: CopyStage.input, producer: nil)
        await setup.close()
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.namespace = "test"
        let node = try await Node.started(configuration: configuration, actors: [CopyStage.self])
        let store = node.store
        #expect(try await eventuallyAsync { try await store.streamStatus(CopyStage.input).parked[CopyStage.kind.name]?[0] != nil })
        #expect(try await store.trimStreams() > 20)
        let trimmed = try await store.streamStatus(CopyStage.input)
        let first = trimmed.partitions[0].firstSequence
        #expect(first > 21 && trimmed.consumers[CopyStage.kind.name]?[0] == 21, "the stage had read 20")
        #expect(trimmed.droppedUnread(by: CopyStage.kind.name, partition: 0) == first - 21)
        CopyStage.failBad.store(false, ordering: .relaxed)
        #expect(try await store.resumeConsumer(CopyStage.kind.name, of: CopyStage.input, partition: 0) == 1)
        #expect(try await eventuallyAsync { try await store.streamStatus(CopyStage.input).consumers[CopyStage.kind.name]?[0] == 51 })
        let copied = try await values(store, CopyStage.output).map(\.sequence)
        #expect(copied == Array(1...20) + Array(first...50), "what it read, then what was kept")
        #expect(try await store.streamStatus(CopyStage.input).droppedUnread(by: CopyStage.kind.name, partition: 0) == 0)
        await node.shutdown()
    }

    /// Two partitions merged before their consumers ran: the child's records come after
    /// every record of both parents.
    @Test func aMergedPartitionIsReadAfterBothParents() async throws {
        CopyStage.failBad.store(false, ordering: .relaxed)
        let directory = try TemporaryDirectory()
        let setup = SQLiteStore(configuration: .init(path: directory.databasePath))
        try await setup.open()
        try await setup.createStream(CopyStage.input, partitions: 2, retention: StreamRetention())
        try await setup.createStream(CopyStage.output, partitions: 1, retention: StreamRetention())
        _ = try await setup.append(records(30, prefix: "first", partition: 0), to: CopyStage.input, producer: nil)
        _ = try await setup.append(records(30, prefix: "second", partition: 1), to: CopyStage.input, producer: nil)
        #expect(try await setup.reshard(CopyStage.input, .merge(0, 1)) == [2])
        _ = try await setup.append(records(30, prefix: "merged"), to: CopyStage.input, producer: nil)
        await setup.close()
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.namespace = "test"
        let node = try await Node.started(configuration: configuration, actors: [CopyStage.self])
        #expect(try await eventuallyAsync { try await values(node.store, CopyStage.output).count == 90 })
        let copied = try await values(node.store, CopyStage.output)
        let lastParent = try #require(copied.lastIndex { $0.partition != 2 })
        let firstChild = try #require(copied.firstIndex { $0.partition == 2 })
        #expect(lastParent < firstChild, "both parents before the merged child")
        #expect(copied.filter { $0.partition == 2 }.map(\.sequence) == Array(1...30))
        await node.shutdown()
    }

    /// Consumers moved by a drain while records flow: each record copied once, in order per
    /// source partition.
    @Test func consumersMovedByADrainWhileRecordsFlowCopyEachRecordOnceInOrder() async throws {
        CopyStage.failBad.store(false, ordering: .relaxed)
        guard let cluster = try await TestCluster.start(.sqlite, count: 3, actors: [CopyStage.self]) else { return }
        let store = cluster.nodes[0].store
        try await store.createStream(CopyStage.input, partitions: 6, retention: StreamRetention())
        try await store.createStream(CopyStage.output, partitions: 1, retention: StreamRetention())
        let total = 3_000
        let feeding = Task {
            for chunk in 0..<30 {
                _ = try await retrying {
                    try await store.append(
                        records(100, prefix: "c\(chunk)"), to: CopyStage.input,
                        producer: StreamProducer(id: "t", firstSequence: Int64(chunk * 100 + 1)))
                }
                try await Task.sleep(for: .milliseconds(30))
            }
        }
        #expect(try await eventuallyAsync { try await values(store, CopyStage.output).count >= 500 })
        let hosting = try await store.registrations(kind: CopyStage.kind.name, limit: 100).compactMap(\.owner)
        let drained = try #require(cluster.nodes.max { a, b in hosting.filter { $0 == a.id }.count < hosting.filter { $0 == b.id }.count })
        try await drained.drain()
        try await feeding.value
        #expect(try await eventuallyAsync(within: .seconds(60)) { try await values(store, CopyStage.output).count >= total })
        let after = try await store.registrations(kind: CopyStage.kind.name, limit: 100)
        #expect(after.allSatisfy { $0.owner != drained.id }, "the drained node hosts no consumer")
        let status = try await store.streamStatus(CopyStage.input)
        // With the nodes down nothing more is copied: what the output holds now is final.
        await cluster.shutdown()
        let reader = SQLiteStore(configuration: .init(path: cluster.directory.databasePath))
        try await reader.open()
        let copied = try await values(reader, CopyStage.output)
        await reader.close()
        #expect(copied.count == total, "no record copied twice")
        for partition in status.partitions {
            let sequences = copied.filter { $0.partition == partition.partition }.map(\.sequence)
            #expect(sequences == Array(1..<partition.nextSequence), "partition \(partition.partition): once each, in order")
        }
    }
}

/// A stage whose handler always throws; it notes the time of each attempt by its node's clock.
final class AlwaysFailingStage: StreamStage {
    static let kind: ActorKind = "always-failing"
    static let input = StreamName(namespace: "test", name: "failing")
    static let attempts = Mutex<[DNAInstant]>([])
    static var failurePolicy: StageFailurePolicy { StageFailurePolicy(attempts: 4, firstBackOff: .seconds(1)) }

    struct Attempts: ActorRequest {
        typealias Response = Int
    }

    static func handlers(_ h: inout Handlers<AlwaysFailingStage>) {
        h.on(Attempts.self) { _, _, _ in attempts.withLock { $0.count } }
    }

    init(context: ActorContext) async throws {}

    func process(_ records: [StreamRecord], context: ActorContext) async throws {
        Self.attempts.withLock { $0.append(context.node.clock.now) }
        throw TestFailure(reason: "the service it calls is down")
    }
}

@Suite("Pipeline stages: back-off", .integration, .serialized, .timeLimit(.minutes(3)))
struct StageBackOffTests {
    /// Wakes come every 100 ms (as the leader's syncs and appends send them): the attempts
    /// keep the policy's spacing all the same (1 s, 2 s, 4 s), then the partition parks.
    @Test func wakesDuringABackOffDoNotRetryBeforeItsTime() async throws {
        AlwaysFailingStage.attempts.withLock { $0 = [] }
        let clock = TestClock()
        let node = try await makeNode(.custom(InMemoryStore(clock: clock)), actors: [AlwaysFailingStage.self], clock: clock)
        try await node.store.createStream(AlwaysFailingStage.input, partitions: 1, retention: StreamRetention())
        _ = try await node.append([StreamAppendRecord(key: [1], value: [1])], to: AlwaysFailingStage.input)
        let consumer = AlwaysFailingStage.consumer(of: 0)
        let ref = try node.ref(AlwaysFailingStage.self, key: consumer.key, namespace: consumer.namespace)
        /// Three wakes, then a call behind them: its answer comes once they were handled.
        func wake() async throws -> Int {
            for _ in 0..<3 { try node.cast(StagePull(), to: consumer) }
            return try await ref.call(AlwaysFailingStage.Attempts())
        }
        #expect(try await wake() == 1, "the first attempt only")
        for _ in 0..<80 {
            clock.advance(by: .milliseconds(100))
            _ = try await wake()
        }
        let attempts = AlwaysFailingStage.attempts.withLock { $0 }
        #expect(attempts.count == 4)
        let policy = AlwaysFailingStage.failurePolicy
        for (index, (earlier, later)) in zip(attempts, attempts.dropFirst()).enumerated() {
            let backOff = policy.backOff(after: index + 1)
            #expect(later - earlier >= backOff, "attempt \(index + 2) waited its back-off")
            #expect(later - earlier <= backOff + .milliseconds(100), "and came at its time (the first wake after it)")
        }
        #expect(try await node.store.streamStatus(AlwaysFailingStage.input).parked[AlwaysFailingStage.kind.name]?[0] != nil)
        await node.shutdown()
    }
}

@Suite("Stage order", .integration, .serialized)
struct StageOrderTests {
    /// A closed parent trimmed empty: finished for a consumer whose checkpoint is at its
    /// end, not for one without a checkpoint (it read none of its records).
    @Test func aTrimmedEmptyParentIsFinishedOnlyForAConsumerThatReadIt() {
        let parent = StreamPartitionStatus(
            partition: 0, isOpen: false, keyLow: 0, keyHigh: .max, firstSequence: 41, nextSequence: 41, bytes: 0, parents: [])
        let child = StreamPartitionStatus(
            partition: 1, isOpen: true, keyLow: 0, keyHigh: .max, firstSequence: 1, nextSequence: 5, bytes: 40, parents: [0])
        var status = StreamStatus(
            stream: StreamName(namespace: "test", name: "s"), retention: StreamRetention(maxBytesPerPartition: 10),
            partitions: [parent, child])
        #expect(!StageOrder.isFinished(parent, in: status, consumer: "stage"), "no checkpoint: none of its 40 records read")
        #expect(StageOrder.runnable(status, consumer: "stage", waitsForParents: true) == [0])
        status.consumers["stage"] = [0: 41]
        #expect(StageOrder.isFinished(parent, in: status, consumer: "stage"))
        #expect(StageOrder.runnable(status, consumer: "stage", waitsForParents: true) == [1])
        // A parent that never held a record is finished for any consumer.
        var never = parent
        never.firstSequence = 1
        never.nextSequence = 1
        #expect(StageOrder.isFinished(never, in: status, consumer: "other"))
    }

    /// Found by the runtime simulation with pipelines (`dna-simulate --pipelines --seed
    /// 1029`): p0 and p1 merged into p2, split at once into p3 and p4; p2 never held a record,
    /// so its checkpoint was at its end, and p4's consumer copied new records of a key while
    /// an older record of that key still waited in p1.
    @Test func anEmptyPartitionIsFinishedOnlyOnceItsParentsAre() {
        func partition(_ id: Int, open: Bool, next: Int64, parents: [Int]) -> StreamPartitionStatus {
            StreamPartitionStatus(
                partition: id, isOpen: open, keyLow: 0, keyHigh: .max, firstSequence: 1, nextSequence: next, bytes: 0, parents: parents)
        }
        let merged = partition(2, open: false, next: 1, parents: [0, 1])
        let child = partition(4, open: true, next: 3, parents: [2])
        var status = StreamStatus(
            stream: StreamName(namespace: "test", name: "s"), retention: StreamRetention(),
            partitions: [partition(0, open: false, next: 5, parents: []), partition(1, open: false, next: 9, parents: []), merged, child])
        status.consumers["stage"] = [0: 5, 1: 7, 2: 1, 4: 1]
        #expect(!StageOrder.isFinished(merged, in: status, consumer: "stage"), "p1 still has records 7 and 8 to read")
        #expect(StageOrder.unfinishedParents(of: child, in: status, consumer: "stage") == [2])
        #expect(StageOrder.runnable(status, consumer: "stage", waitsForParents: true) == [1])
        status.consumers["stage"]?[1] = 9
        #expect(StageOrder.isFinished(merged, in: status, consumer: "stage"))
        #expect(StageOrder.runnable(status, consumer: "stage", waitsForParents: true) == [4])
    }
}
