import DNACommandSupport
import ArgumentParser
import DNA
import DNAExamples
import DNAPostgres
import DNATesting
import Foundation
import Logging

/// Options every scenario takes: how often to run it, how to print it, where its files go,
/// and the node settings the scenarios on the embedded store use.
struct BenchOptions: ParsableArguments {
    @Option(name: .customLong("repeat"), help: "Runs of the scenario; the run with the median result is printed, with the spread.")
    var repetitions: Int = 1

    @Flag(help: "Print one JSON object per scenario (the same field names as the text).")
    var json = false

    @Option(help: "Directory for the database files (default: a new temporary directory, removed after).")
    var directory: String?

    @Option(help: "Messages per batch (and baseline rows per transaction).")
    var maxBatch: Int = 256

    @Option(help: "Batches of one actor on their way to the store at once.")
    var pipelineDepth: Int = 16

    @Option(help: "SQLite synchronous setting: normal or full.")
    var synchronous: String = "normal"

    func validate() throws {
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard maxBatch >= 1, pipelineDepth >= 1 else { throw ValidationError("--max-batch and --pipeline-depth must be at least 1") }
        guard SQLiteStore.Configuration.Synchronous(rawValue: synchronous.uppercased()) != nil else {
            throw ValidationError("--synchronous must be normal or full")
        }
    }
}

/// `--store` of the scenarios that run on PostgreSQL too.
struct BenchStoreOption: ParsableArguments {
    @Option(
        help: """
            sqlite (embedded, the default), postgres (a private PostgreSQL server started for the run, \
            from /usr/lib/postgresql), or postgres://USER@HOST:PORT/DB.
            """)
    var store: String = "sqlite"

    func validate() throws {
        guard store == "sqlite" || store == "postgres" || store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") else {
            throw ValidationError("--store must be sqlite, postgres or postgres://USER@HOST:PORT/DB")
        }
    }
}

/// Where a scenario runs: the runner on the embedded store and, when asked, a PostgreSQL URL.
struct BenchSetting {
    var runner: BenchRunner
    var postgresURL: String?
}

/// One scenario of `dna-bench`: a subcommand whose options are its own.
protocol BenchScenario: AsyncParsableCommand {
    /// The scenario's name, as `--json` prints it and `all` runs it.
    static var name: String { get }
    var options: BenchOptions { get }
    /// `--store` where the scenario takes one.
    var store: String? { get }
    func measure(_ setting: BenchSetting) async throws -> BenchReport
}

extension BenchScenario {
    var store: String? { nil }

    func run() async throws {
        try bootstrapLogging("error")
        try await BenchSession.with(options: options, store: store) { setting in
            try await self.measureAndPrint(setting)
        }
    }

    /// Runs the scenario `--repeat` times and prints the median run.
    func measureAndPrint(_ setting: BenchSetting) async throws {
        var runs: [BenchReport] = []
        for _ in 0..<options.repetitions { runs.append(try await measure(setting)) }
        let report = BenchReport.median(of: runs)
        print(options.json ? report.json() : report.text())
    }
}

/// The files and servers of one `dna-bench` run: a directory for the databases and, for
/// `--store postgres`, a private PostgreSQL server; both removed when the run ends.
enum BenchSession {
    static func with(options: BenchOptions, store: String?, _ body: (BenchSetting) async throws -> Void) async throws {
        var server: LocalPostgresServer?
        var postgresURL: String?
        if store == "postgres" {
            let started = try await LocalPostgresServer.start()
            server = started
            do {
                postgresURL = try await started.createDatabase(named: "dna_bench")
            } catch {
                await started.stop()
                throw error
            }
        } else if let store, store != "sqlite" {
            postgresURL = store
        }
        let root = options.directory ?? NSTemporaryDirectory() + "dna-bench-\(getpid())"
        defer { if options.directory == nil { try? FileManager.default.removeItem(atPath: root) } }
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let synchronous = SQLiteStore.Configuration.Synchronous(rawValue: options.synchronous.uppercased()) ?? .normal
            let runner = BenchRunner(
                root: root, maxBatch: options.maxBatch, pipelineDepth: options.pipelineDepth, synchronous: synchronous)
            try await body(BenchSetting(runner: runner, postgresURL: postgresURL))
        } catch {
            await server?.stop()
            throw error
        }
        await server?.stop()
    }
}

struct SeedScenario: BenchScenario {
    static let name = "seed"
    static let configuration = CommandConfiguration(
        commandName: name,
        abstract: "The original's headline: one actor, casts of one put each, against raw multi-row upserts in the same run.")

    @OptionGroup var options: BenchOptions
    @OptionGroup var storeOption: BenchStoreOption
    @Option(help: "Casts to the one actor.") var messages: Int = 1_000_000

    var store: String? { storeOption.store }

    func validate() throws { guard messages > 0 else { throw ValidationError("--messages must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport {
        if let url = setting.postgresURL { return try await setting.runner.seedPostgres(messages: messages, url: url) }
        return try await setting.runner.seed(messages: messages)
    }
}

struct ManyActorsScenario: BenchScenario {
    static let name = "many-actors"
    static let configuration = CommandConfiguration(
        commandName: name, abstract: "Many actors with puts each, against the same rows written raw (in arrival order and sorted).")

    @OptionGroup var options: BenchOptions
    @Option(help: "Actors.") var actors: Int = 10_000
    @Option(help: "Puts per actor.") var putsPerActor: Int = 100

    func validate() throws {
        guard actors > 0, putsPerActor > 0 else { throw ValidationError("--actors and --puts-per-actor must be more than 0") }
    }

    func measure(_ setting: BenchSetting) async throws -> BenchReport {
        try await setting.runner.manyActors(actors: actors, putsPerActor: putsPerActor)
    }
}

struct CallLatencyScenario: BenchScenario {
    static let name = "call-latency"
    static let configuration = CommandConfiguration(commandName: name, abstract: "Latency of calls one at a time (each a durable put).")

    @OptionGroup var options: BenchOptions
    @Option(help: "Calls.") var calls: Int = 10_000

    func validate() throws { guard calls > 0 else { throw ValidationError("--calls must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.callLatency(calls: calls) }
}

struct ActivationScenario: BenchScenario {
    static let name = "activation"
    static let configuration = CommandConfiguration(commandName: name, abstract: "Cold activations per second.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Actors to activate.") var actors: Int = 10_000

    func validate() throws { guard actors > 0 else { throw ValidationError("--actors must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.activation(actors: actors) }
}

struct MemoryScenario: BenchScenario {
    static let name = "memory"
    static let configuration = CommandConfiguration(commandName: name, abstract: "Heap per idle activation.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Idle activations to hold.") var actors: Int = 100_000

    func validate() throws { guard actors > 0 else { throw ValidationError("--actors must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.memory(actors: actors) }
}

struct RemoteCallsScenario: BenchScenario {
    static let name = "remote-calls"
    static let configuration = CommandConfiguration(
        commandName: name, abstract: "Calls and casts from one node to an actor on another, against the same on the owner.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Calls, one at a time, for the latency.") var calls: Int = 10_000
    @Option(help: "Casts, for the throughput.") var casts: Int = 1_000_000

    func validate() throws { guard calls > 0, casts > 0 else { throw ValidationError("--calls and --casts must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport {
        try await setting.runner.remoteCalls(calls: calls, casts: casts)
    }
}

struct TransportScenario: BenchScenario {
    static let name = "transport"
    static let configuration = CommandConfiguration(commandName: name, abstract: "Pipelined requests over the cluster transport.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Requests.") var requests: Int = 200_000

    func validate() throws { guard requests > 0 else { throw ValidationError("--requests must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.transport(requests: requests) }
}

struct FailoverScenario: BenchScenario {
    static let name = "failover"
    static let configuration = CommandConfiguration(
        commandName: name, abstract: "From SIGKILL of an owner (a `dna node` process) to the first call answered by the next.")

    @OptionGroup var options: BenchOptions
    @OptionGroup var storeOption: BenchStoreOption

    var store: String? { storeOption.store }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.failover(store: setting.postgresURL) }
}

struct DrainScenario: BenchScenario {
    static let name = "drain"
    static let configuration = CommandConfiguration(commandName: name, abstract: "Draining a node under load: time, lost writes, latency.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Actors on the drained node.") var actors: Int = 1_000

    func validate() throws { guard actors > 0 else { throw ValidationError("--actors must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.drain(actors: actors) }
}

struct RebalanceScenario: BenchScenario {
    static let name = "rebalance"
    static let configuration = CommandConfiguration(commandName: name, abstract: "A node joining under load: time to balance, lost writes.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Actors to spread.") var actors: Int = 3_000

    func validate() throws { guard actors > 0 else { throw ValidationError("--actors must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.rebalance(actors: actors) }
}

struct AlarmsScenario: BenchScenario {
    static let name = "alarms"
    static let configuration = CommandConfiguration(
        commandName: name, abstract: "Alarms due within a second on three nodes: lateness, duplicates.")

    @OptionGroup var options: BenchOptions
    @Option(help: "Alarms (10 per actor).") var alarms: Int = 10_000

    func validate() throws { guard alarms >= 10 else { throw ValidationError("--alarms must be at least 10") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport { try await setting.runner.alarms(count: alarms) }
}

struct PipelineScenario: BenchScenario {
    static let name = "pipeline"
    static let configuration = CommandConfiguration(
        commandName: name, abstract: "Three forwarding stages × 8 partitions: throughput against raw writes, latency at half rate.")

    @OptionGroup var options: BenchOptions
    @OptionGroup var storeOption: BenchStoreOption
    @Option(help: "Records.") var records: Int = 1_000_000

    var store: String? { storeOption.store }

    func validate() throws { guard records > 0 else { throw ValidationError("--records must be more than 0") } }

    func measure(_ setting: BenchSetting) async throws -> BenchReport {
        try await setting.runner.pipeline(records: records, postgresURL: setting.postgresURL)
    }
}

/// Every scenario in turn, each at its defaults unless `--messages` or `--actors` scale it.
struct AllScenarios: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all", abstract: "Every scenario in turn (on the embedded store; seed, failover and pipeline take --store).")

    @OptionGroup var options: BenchOptions
    @OptionGroup var storeOption: BenchStoreOption
    @Option(help: "The count of every scenario that counts messages, calls, requests or records (default: each its own).")
    var messages: Int?
    @Option(help: "The count of every scenario that counts actors (default: each its own).")
    var actors: Int?
    @Option(help: "Alarms for the alarms scenario (default 10,000).")
    var alarms: Int?

    /// Each scenario's own arguments, as if typed: the count options it has.
    func scenarios() throws -> [any BenchScenario] {
        let shared = options.arguments
        let store = ["--store", storeOption.store]
        func count(_ option: String, _ value: Int?) -> [String] { value.map { ["--\(option)", String($0)] } ?? [] }
        return [
            try SeedScenario.parse(shared + store + count("messages", messages)),
            try ManyActorsScenario.parse(shared + count("actors", actors)),
            try CallLatencyScenario.parse(shared + count("calls", messages)),
            try ActivationScenario.parse(shared + count("actors", actors)),
            try MemoryScenario.parse(shared + count("actors", actors)),
            try RemoteCallsScenario.parse(shared + count("casts", messages)),
            try TransportScenario.parse(shared + count("requests", messages)),
            try FailoverScenario.parse(shared + store),
            try DrainScenario.parse(shared + count("actors", actors)),
            try RebalanceScenario.parse(shared + count("actors", actors)),
            try AlarmsScenario.parse(shared + count("alarms", alarms)),
            try PipelineScenario.parse(shared + store + count("records", messages)),
        ]
    }

    func run() async throws {
        try bootstrapLogging("error")
        let scenarios = try scenarios()
        try await BenchSession.with(options: options, store: storeOption.store) { setting in
            for scenario in scenarios { try await scenario.measureAndPrint(setting) }
        }
    }
}

extension BenchOptions {
    /// These options as arguments, for the scenarios `all` parses.
    var arguments: [String] {
        var arguments = [
            "--repeat", String(repetitions), "--max-batch", String(maxBatch), "--pipeline-depth", String(pipelineDepth),
            "--synchronous", synchronous,
        ]
        if json { arguments.append("--json") }
        if let directory { arguments += ["--directory", directory] }
        return arguments
    }
}

/// The spelling before the scenarios were subcommands, `dna-bench --scenario NAME` with
/// `--messages` and `--actors` meaning each scenario's count, rewritten to the subcommand
/// (deprecated; kept for one release).
enum LegacyBenchArguments {
    /// What `--messages` was for each scenario that took it.
    static let messagesOption = [
        "seed": "messages", "call-latency": "calls", "remote-calls": "casts", "transport": "requests", "pipeline": "records",
        "all": "messages",
    ]
    static let takesActors: Set<String> = ["many-actors", "activation", "memory", "drain", "rebalance", "all"]
    static let takesStore: Set<String> = ["seed", "failover", "pipeline", "all"]
    static let takesAlarms: Set<String> = ["alarms", "all"]
    /// What `--scenario` named.
    static let scenarios: Set<String> = [
        "seed", "many-actors", "call-latency", "activation", "memory", "remote-calls", "transport", "failover", "drain", "rebalance",
        "alarms", "pipeline", "all",
    ]

    /// The arguments in the new spelling, or nil when they do not use `--scenario`.
    static func rewrite(_ arguments: [String]) throws -> [String]? {
        guard let flag = arguments.firstIndex(where: { $0 == "--scenario" || $0.hasPrefix("--scenario=") }) else { return nil }
        var rest = arguments
        let scenario: String
        if rest[flag].hasPrefix("--scenario=") {
            scenario = String(rest[flag].dropFirst("--scenario=".count))
            rest.remove(at: flag)
        } else {
            guard flag + 1 < rest.count else { throw ValidationError("--scenario needs a name: dna-bench --help lists them") }
            scenario = rest[flag + 1]
            rest.removeSubrange(flag...(flag + 1))
        }
        guard scenarios.contains(scenario) else {
            throw ValidationError("--scenario '\(scenario)' is not a scenario: \(scenarios.sorted().joined(separator: ", "))")
        }
        var rewritten = [scenario]
        var index = 0
        while index < rest.count {
            var argument = rest[index]
            var value: String?
            var consumed = 1
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                value = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            let option: String?
            switch argument {
            case "--messages": option = messagesOption[scenario]
            case "--actors": option = takesActors.contains(scenario) ? "actors" : nil
            case "--alarms": option = takesAlarms.contains(scenario) ? "alarms" : nil
            case "--store": option = takesStore.contains(scenario) ? "store" : nil
            default:
                rewritten.append(rest[index])
                index += 1
                continue
            }
            if value == nil {
                guard index + 1 < rest.count, !rest[index + 1].hasPrefix("--") else { throw ValidationError("\(argument) needs a value") }
                value = rest[index + 1]
                consumed = 2
            }
            // Scenarios that never used the option ignored it; so does the rewrite.
            if let option, let value { rewritten += ["--\(option)", value] }
            index += consumed
        }
        return rewritten
    }
}
