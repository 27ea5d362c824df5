import ArgumentParser
import DNA
import DNAExamples
import Foundation
import Logging

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure DNA on the embedded SQLite store against raw SQLite in the same run.")

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case seed
        case manyActors = "many-actors"
        case callLatency = "call-latency"
        case activation
        case memory
        case all
    }

    @Option(help: "seed | many-actors | call-latency | activation | memory | all")
    var scenario: Scenario = .seed

    @Option(help: "Messages for seed (default 1,000,000), calls for call-latency (default 10,000).")
    var messages: Int?

    @Option(help: "Actors for many-actors and activation (default 10,000), memory (default 100,000).")
    var actors: Int?

    @Option(help: "Messages per batch (and baseline rows per transaction).")
    var maxBatch: Int = 256

    @Option(help: "Batches of one actor on their way to the store at once.")
    var pipelineDepth: Int = 4

    @Option(help: "SQLite synchronous setting: normal or full.")
    var synchronous: String = "normal"

    @Option(help: "Directory for the database files (default: a new temporary directory, removed after).")
    var directory: String?

    @Option(name: .customLong("repeat"), help: "Runs of each scenario; the run with the median result is printed, with the spread.")
    var repetitions: Int = 1

    @Flag(help: "Print one JSON object per scenario.")
    var json = false

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let scenarios: [Scenario] = scenario == .all ? [.seed, .manyActors, .callLatency, .activation, .memory] : [scenario]
        let root = directory ?? NSTemporaryDirectory() + "dna-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: root) } }
        guard let sync = SQLiteStore.Configuration.Synchronous(rawValue: synchronous.uppercased()) else {
            throw ValidationError("--synchronous must be normal or full")
        }
        let bench = BenchRunner(root: root, maxBatch: maxBatch, pipelineDepth: pipelineDepth, synchronous: sync)
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        for scenario in scenarios {
            var runs: [BenchReport] = []
            for _ in 0..<repetitions {
                switch scenario {
                case .seed: runs.append(try await bench.seed(messages: messages ?? 1_000_000))
                case .manyActors: runs.append(try await bench.manyActors(actors: actors ?? 10_000, putsPerActor: 100))
                case .callLatency: runs.append(try await bench.callLatency(calls: messages ?? 10_000))
                case .activation: runs.append(try await bench.activation(actors: actors ?? 10_000))
                case .memory: runs.append(try await bench.memory(actors: actors ?? 100_000))
                case .all: continue
                }
            }
            let report = BenchReport.median(of: runs)
            print(json ? report.json() : report.text())
        }
    }
}
