import DNACommandSupport
import ArgumentParser
import DNA
import DNAExamples
import DNAPostgres
import DNATesting
import Foundation

/// `dna-bench pipeline-demo`: the example pipeline (readings → totals per device → totals per
/// city) on one node, fed and checked.
struct PipelineDemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline-demo",
        abstract: "Run the example pipeline: feed device readings, let the stages total them per device and per city, check the totals.")

    @Option(help: "The store: sqlite:PATH or postgres://…")
    var store: String = "sqlite:dna-pipeline-demo.db"

    @Option(help: "How many readings to feed.")
    var readings: Int = 100_000

    @Option(help: "How many devices they come from.")
    var devices: Int = 1_000

    @Option(help: "Seconds to wait for the stages to finish.")
    var timeout: Double = 300

    static let cities = ["oslo", "lima", "pune", "kyiv", "baku", "quito", "hanoi", "accra"]

    func validate() throws {
        guard readings > 0, devices > 0 else { throw ValidationError("--readings and --devices must be more than 0") }
    }

    func run() async throws {
        try bootstrapLogging("warning")
        var configuration = Node.Configuration(store: StoreArgument(store).choice)
        configuration.namespace = ExamplePipeline.readings.namespace
        let node = try await Node.started(configuration: configuration, actors: [DeviceTotals.self, CityTotals.self])
        do {
            try await demo(node)
        } catch {
            await node.shutdown()
            throw error
        }
        await node.shutdown()
    }

    private func demo(_ node: Node) async throws {
        let store = node.store
        for (stream, partitions) in [
            (ExamplePipeline.readings, ExamplePipeline.readingPartitions), (ExamplePipeline.cityReadings, ExamplePipeline.cityPartitions),
        ] {
            if (try? await store.streamStatus(stream)) == nil {
                try await store.createStream(stream, partitions: partitions, retention: StreamRetention())
            }
        }
        let before = try await cityTotals(node)
        let consumedBefore = try await consumed(store)
        var fed: [String: ExamplePipeline.Total] = [:]
        let producer = "pipeline-demo-\(UUID().uuidString.prefix(8))"
        let started = ContinuousClock.now
        var index = 0
        while index < readings {
            let end = min(readings, index + 500)
            var records: [StreamAppendRecord] = []
            records.reserveCapacity(end - index)
            for i in index..<end {
                let device = i % devices
                let city = Self.cities[device % Self.cities.count]
                let amount = Int64(i % 10 + 1)
                records.append(
                    StreamAppendRecord(key: Array("device-\(device)".utf8), value: ExamplePipeline.reading(city: city, amount: amount)))
                fed[city, default: .init()].count += 1
                fed[city, default: .init()].sum += amount
            }
            _ = try await store.append(
                records, to: ExamplePipeline.readings, producer: StreamProducer(id: producer, firstSequence: Int64(index + 1)))
            index = end
        }
        let fedIn = ContinuousClock.now - started
        print("fed \(readings) readings from \(min(devices, readings)) devices in \(Self.cities.count) cities (\(seconds(fedIn)) s)")
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while try await consumed(store) < consumedBefore + Int64(readings) {
            guard ContinuousClock.now < deadline else { throw ValidationError("the stages did not finish within \(timeout) s") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let took = ContinuousClock.now - started
        let rate = Double(readings) / max(0.001, Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
        print("readings → device-totals → city-readings → city-totals: done in \(seconds(took)) s (\(Int(rate)) readings/s)")
        let after = try await cityTotals(node)
        print(
            "\n" + "CITY".padding(toLength: 10, withPad: " ", startingAt: 0) + "READINGS".padding(toLength: 12, withPad: " ", startingAt: 0)
                + "SUM")
        var matches = true
        for city in after.keys.sorted() {
            let total = after[city]!
            let old = before[city] ?? .init()
            print(
                city.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + "\(total.count)".padding(toLength: 12, withPad: " ", startingAt: 0) + "\(total.sum)")
            let added = ExamplePipeline.Total(count: total.count - old.count, sum: total.sum - old.sum)
            if added != (fed[city] ?? .init()) { matches = false }
        }
        print("\ntotals match the readings fed: \(matches ? "yes" : "NO")")
        if !matches { throw ExitCode(1) }
    }

    /// Readings the second stage has consumed (forwarded by the first).
    private func consumed(_ store: any StreamStore) async throws -> Int64 {
        let status = try await store.streamStatus(ExamplePipeline.cityReadings)
        return status.partitions.reduce(Int64(0)) {
            $0 + (status.consumers[CityTotals.kind.name]?[$1.partition] ?? $1.firstSequence) - $1.firstSequence
        }
    }

    private func cityTotals(_ node: Node) async throws -> [String: ExamplePipeline.Total] {
        var result: [String: ExamplePipeline.Total] = [:]
        for partition in 0..<ExamplePipeline.cityPartitions {
            let ref = try node.ref(CityTotals.self, key: String(partition), namespace: ExamplePipeline.cityReadings.namespace)
            result.merge(try await ref.call(ExamplePipeline.Totals())) { a, _ in a }
        }
        return result
    }

    private func seconds(_ duration: Duration) -> String {
        String(format: "%.2f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}
