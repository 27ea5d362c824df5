import DNACommandSupport
import ArgumentParser
import DNA
import DNAExamples
import DNAPostgres
import DNATesting
import Foundation
import Logging

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure DNA against raw SQLite or PostgreSQL in the same run, and a cluster on loopback.")

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case seed
        case manyActors = "many-actors"
        case callLatency = "call-latency"
        case activation
        case memory
        case remoteCalls = "remote-calls"
        case transport
        case failover
        case drain
        case rebalance
        case alarms
        case pipeline
        case all
    }

    @Option(
        help:
            "seed | many-actors | call-latency | activation | memory | remote-calls | transport | failover | drain | rebalance | alarms | pipeline | all"
    )
    var scenario: Scenario = .seed

    @Option(
        help: """
            The store for seed, failover and pipeline: sqlite (embedded, the default), postgres (a private             PostgreSQL server started for the run), or postgres://USER@HOST:PORT/DB.
            """)
    var store: String = "sqlite"

    @Option(
        help: "Messages for seed (default 1,000,000), calls for call-latency (default 10,000), records for pipeline (default 1,000,000).")
    var messages: Int?

    @Option(
        help:
            "Actors for many-actors and activation (default 10,000), memory (default 100,000), drain (default 1,000), rebalance (default 3,000)."
    )
    var actors: Int?

    @Option(help: "Alarms for alarms (default 10,000: 10 per actor).")
    var alarms: Int = 10_000

    @Option(help: "Messages per batch (and baseline rows per transaction).")
    var maxBatch: Int = 256

    @Option(help: "Batches of one actor on their way to the store at once.")
    var pipelineDepth: Int = 16

    @Option(help: "SQLite synchronous setting: normal or full.")
    var synchronous: String = "normal"

    @Option(help: "Directory for the database files (default: a new temporary directory, removed after).")
    var directory: String?

    @Option(name: .customLong("repeat"), help: "Runs of each scenario; the run with the median result is printed, with the spread.")
    var repetitions: Int = 1

    @Flag(help: "Print one JSON object per scenario.")
    var json = false

    func run() async throws {
        try bootstrapLogging("error")
        let scenarios: [Scenario] =
            scenario == .all
            ? [
                .seed, .manyActors, .callLatency, .activation, .memory, .remoteCalls, .transport, .failover, .drain, .rebalance, .alarms,
                .pipeline,
            ]
            : [scenario]
        var postgresServer: LocalPostgresServer?
        var postgresURL: String?
        if store == "postgres" {
            let server = try await LocalPostgresServer.start()
            postgresServer = server
            postgresURL = try await server.createDatabase(named: "dna_bench")
        } else if store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") {
            postgresURL = store
        } else if store != "sqlite" {
            throw ValidationError("--store must be sqlite, postgres or postgres://…")
        }

        let root = directory ?? NSTemporaryDirectory() + "dna-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: root) } }
        guard let sync = SQLiteStore.Configuration.Synchronous(rawValue: synchronous.uppercased()) else {
            throw ValidationError("--synchronous must be normal or full")
        }
        let bench = BenchRunner(root: root, maxBatch: maxBatch, pipelineDepth: pipelineDepth, synchronous: sync)
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        do {
            try await run(scenarios, bench: bench, postgresURL: postgresURL)
        } catch {
            await postgresServer?.stop()
            throw error
        }
        await postgresServer?.stop()
    }

    private func run(_ scenarios: [Scenario], bench: BenchRunner, postgresURL: String?) async throws {
        for scenario in scenarios {
            var runs: [BenchReport] = []
            for _ in 0..<repetitions {
                switch scenario {
                case .seed:
                    if let postgresURL {
                        runs.append(try await bench.seedPostgres(messages: messages ?? 1_000_000, url: postgresURL))
                    } else {
                        runs.append(try await bench.seed(messages: messages ?? 1_000_000))
                    }
                case .remoteCalls:
                    runs.append(try await bench.remoteCalls(calls: 10_000, casts: messages ?? 1_000_000))
                case .transport: runs.append(try await bench.transport(requests: messages ?? 200_000))
                case .failover: runs.append(try await bench.failover(store: postgresURL))
                case .manyActors: runs.append(try await bench.manyActors(actors: actors ?? 10_000, putsPerActor: 100))
                case .callLatency: runs.append(try await bench.callLatency(calls: messages ?? 10_000))
                case .activation: runs.append(try await bench.activation(actors: actors ?? 10_000))
                case .memory: runs.append(try await bench.memory(actors: actors ?? 100_000))
                case .drain: runs.append(try await bench.drain(actors: actors ?? 1_000))
                case .rebalance: runs.append(try await bench.rebalance(actors: actors ?? 3_000))
                case .alarms: runs.append(try await bench.alarms(count: alarms))
                case .pipeline: runs.append(try await bench.pipeline(records: messages ?? 1_000_000, postgresURL: postgresURL))
                case .all: continue
                }
            }
            let report = BenchReport.median(of: runs)
            print(json ? report.json() : report.text())
        }
    }
}
