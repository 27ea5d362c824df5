import ArgumentParser
import DNATesting
import Foundation
import Synchronization

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

    @Option(help: "Seconds of simulated time with faults (then 30 s without with the runtime engine, 60 s with the model, so every call is answered).")
    var seconds: Int = 30

    @Option(
        help: """
            What runs: `runtime` (real nodes — Node, Activation and their machines — over the simulated network, \
            store and clocks) or `model` (the decision machines alone, driven by a model of the node; faster).
            """)
    var engine: Engine = .runtime

    @Flag(help: "No crashes (the runtime engine): a crash becomes a pause, and every cast must be applied or counted as dropped.")
    var noCrashes = false

    @Option(help: "Seeds run at once, each on a thread (default: one per processor).")
    var parallel: Int?

    enum Engine: String, ExpressibleByArgument, CaseIterable {
        case runtime
        case model
    }

    func validate() throws {
        guard nodes >= 1, nodes <= 1000 else { throw ValidationError("--nodes must be 1 to 1,000") }
        guard actors >= 1 else { throw ValidationError("--actors must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
        if let parallel, parallel < 1 { throw ValidationError("--parallel must be at least 1") }
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
        let runner = SeedRunner(seeds: seeds, threads: min(parallel ?? ProcessInfo.processInfo.activeProcessorCount, seeds.count)) {
            [nodes, actors, seconds, trace, engine, noCrashes] seed in
            var configuration = SimulationConfiguration(seed: seed)
            configuration.nodes = nodes
            configuration.actors = actors
            configuration.faultyPhase = .seconds(seconds)
            configuration.trace = trace
            configuration.crashes = !noCrashes
            if engine == .runtime { configuration.quietPhase = .seconds(30) }
            switch engine {
            case .model: return ClusterSimulation(configuration).run()
            case .runtime: return RuntimeSimulation(configuration: configuration).run()
            }
        }
        var done = 0
        while let result = runner.next() {
            done += 1
            events += result.events
            for (name, value) in result.counters { counters[name, default: 0] += value }
            if trace { for line in result.trace { print(line) } }
            if terminal {
                let elapsed = (ContinuousClock.now - started).components.seconds
                progress("\(done)/\(seeds.count) seeds done (last: \(result.seed)), \(events) events, \(elapsed) s")
            }
            if let violation = result.violations.first {
                if terminal { progress("") }
                print("seed \(result.seed): VIOLATION \(violation)")
                if keepGoing {
                    failing[violation.invariant, default: []].append(result.seed)
                    continue
                }
                runner.stop()
                print(
                    "replay: dna simulate --engine \(engine.rawValue) --seed \(result.seed) --nodes \(nodes) --actors \(actors) --seconds \(seconds)\(noCrashes ? " --no-crashes" : "") --trace"
                )
                throw ExitCode(1)
            }
        }
        if terminal { progress("") }
        if !failing.isEmpty {
            for (invariant, seeds) in failing.sorted(by: { $0.key < $1.key }) {
                print("\(invariant): \(seeds.count) seeds, first \(seeds.sorted().prefix(10).map(String.init).joined(separator: " "))")
            }
            throw ExitCode(1)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "\(seeds.count) seeds, \(nodes) nodes, \(actors) actors (\(engine.rawValue), \(runner.threads) threads): no violation; \(String(format: "%.2f", Double(seeds.count) / seconds)) seeds/s, \(events) events (\(String(format: "%.0f", Double(events) / seconds)) events/s), \(String(format: "%.0f", seconds)) s"
        )
        let interesting = counters.keys.sorted().map { "\($0)=\(counters[$0]!)" }
        print("counters: " + interesting.joined(separator: " "))
    }
}

/// Runs seeds on threads of their own (each simulation runs its jobs on the thread it
/// runs on, which must not be one of Swift concurrency's), and hands their results back as
/// they finish.
private final class SeedRunner: @unchecked Sendable {
    private struct State {
        var next = 0
        var stopped = false
        var finished: [SimulationResult] = []
    }

    let threads: Int
    private let seeds: [UInt64]
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    private var delivered = 0

    init(seeds: [UInt64], threads: Int, run: @escaping @Sendable (UInt64) -> SimulationResult) {
        self.seeds = seeds
        self.threads = max(1, threads)
        for _ in 0..<self.threads {
            let thread = Thread { [self] in
                while let seed = take() {
                    let result = run(seed)
                    state.withLock { $0.finished.append(result) }
                    finished.signal()
                }
            }
            thread.stackSize = 64 << 20
            thread.start()
        }
    }

    private func take() -> UInt64? {
        state.withLock { state in
            guard !state.stopped, state.next < seeds.count else { return nil }
            defer { state.next += 1 }
            return seeds[state.next]
        }
    }

    /// The next result to finish; `nil` once every seed was handed back (or after ``stop()``).
    func next() -> SimulationResult? {
        guard delivered < seeds.count, !state.withLock({ $0.stopped }) else { return nil }
        finished.wait()
        delivered += 1
        return state.withLock { $0.finished.removeFirst() }
    }

    /// Takes no more seeds (the threads finish the ones they run).
    func stop() { state.withLock { $0.stopped = true } }
}
