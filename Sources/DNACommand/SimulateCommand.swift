import ArgumentParser
import DNATesting
import Foundation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic cluster simulation over many seeds; stop at the first violation and print its seed.",
        discussion: """
            Each seed runs N real nodes (`--engine runtime`, the default: Node, Activation and their machines, over a \
            simulated network, store and clocks, on one thread) or the model of a node over the same machines \
            (`--engine model`, faster), under faults the seed chooses: crashes, pauses (also mid-batch), drifting \
            clocks, jumps of the store's clock, store outages, stalls, lock timeouts, answers lost after the store \
            applied, partitions, broken connections, drains and migrations. `--seed S --trace` replays one seed step \
            by step.
            """)

    @Option(help: "How many seeds to run, from --first.")
    var seeds: Int = 100

    @Option(help: "The first seed.")
    var first: UInt64 = 1

    @Option(help: "Run only this seed (with --trace, print every step).")
    var seed: UInt64?

    @Flag(help: "Print every event of the run (with --seed).")
    var trace = false

    @Flag(help: "Go on after a violation; print every failing seed and a summary by invariant.")
    var keepGoing = false

    @Option(help: "Nodes in each run.")
    var nodes: Int = 3

    @Option(help: "Actors the clients talk to.")
    var actors: Int = 3

    @Option(help: "Seconds of simulated time with faults (then 60 s without, so every call is answered).")
    var seconds: Int = 30

    @Option(
        help: """
            What runs: `runtime` (real nodes — Node, Activation and their machines — over the simulated network, \
            store and clocks) or `model` (the decision machines alone, driven by a model of the node; faster).
            """)
    var engine: Engine = .runtime

    enum Engine: String, ExpressibleByArgument, CaseIterable {
        case runtime
        case model
    }

    func validate() throws {
        guard nodes >= 1, nodes <= 1000 else { throw ValidationError("--nodes must be 1 to 1,000") }
        guard actors >= 1 else { throw ValidationError("--actors must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
    }

    /// Runs `body` on a thread of its own (the runtime simulation runs jobs on its thread,
    /// which must not be one of Swift concurrency's) and waits for it.
    static func onThread<T>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.value = body()
            done.signal()
        }
        thread.stackSize = 64 << 20
        thread.start()
        done.wait()
        return box.value!
    }

    func run() throws {
        // The runtime iterates dictionaries: a replay follows the same path only with the
        // same hashing, so the process runs again with deterministic hashing.
        if engine == .runtime, ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil {
            setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // Not reached unless exec failed; the run goes on, maybe not replayable.
        }
        let seeds: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(self.seeds)).map { first + $0 }
        let started = ContinuousClock.now
        var events = 0
        var counters: [String: Int] = [:]
        var failing: [String: [UInt64]] = [:]
        // Progress on a terminal, on standard error (the results stay on standard output).
        let terminal = isatty(STDERR_FILENO) == 1 && !trace
        func progress(_ line: String) { FileHandle.standardError.write(Data("\u{1B}[2K\(line)\r".utf8)) }
        var done = 0
        for seed in seeds {
            if terminal {
                let elapsed = (ContinuousClock.now - started).components.seconds
                progress("seed \(seed): \(done)/\(seeds.count) done, \(events) events, \(elapsed) s")
            }
            done += 1
            var configuration = SimulationConfiguration(seed: seed)
            configuration.nodes = nodes
            configuration.actors = actors
            configuration.faultyPhase = .seconds(seconds)
            configuration.trace = trace
            let result: SimulationResult
            switch engine {
            case .model: result = ClusterSimulation(configuration).run()
            case .runtime:
                let settings = configuration
                result = Self.onThread { RuntimeSimulation(configuration: settings).run() }
            }
            events += result.events
            for (name, value) in result.counters { counters[name, default: 0] += value }
            if trace { for line in result.trace { print(line) } }
            if let violation = result.violations.first {
                if terminal { progress("") }
                print("seed \(seed): VIOLATION \(violation)")
                if keepGoing {
                    failing[violation.invariant, default: []].append(seed)
                    continue
                }
                print("replay: dna simulate --engine \(engine.rawValue) --seed \(seed) --nodes \(nodes) --actors \(actors) --seconds \(seconds) --trace")
                throw ExitCode(1)
            }
        }
        if terminal { progress("") }
        if !failing.isEmpty {
            for (invariant, seeds) in failing.sorted(by: { $0.key < $1.key }) {
                print("\(invariant): \(seeds.count) seeds, first \(seeds.prefix(10).map(String.init).joined(separator: " "))")
            }
            throw ExitCode(1)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "\(seeds.count) seeds, \(nodes) nodes, \(actors) actors (\(engine.rawValue)): no violation; \(String(format: "%.1f", Double(seeds.count) / seconds)) seeds/s, \(events) events (\(String(format: "%.0f", Double(events) / seconds)) events/s)"
        )
        let interesting = counters.keys.sorted().map { "\($0)=\(counters[$0]!)" }
        print("counters: " + interesting.joined(separator: " "))
    }
}

/// What a thread hands back to the one waiting for it (after its semaphore).
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
