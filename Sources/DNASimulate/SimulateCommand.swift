import ArgumentParser
import DNA
import DNATesting
import Foundation
import Synchronization

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dna-simulate",
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

    @Option(
        help:
            "Seconds of simulated time with faults (then 30 s without with the runtime engine, 60 s with the model, so every call is answered)."
    )
    var seconds: Int = 30

    @Option(
        help: """
            What runs: `runtime` (real nodes — Node, Activation and their machines — over the simulated network, \
            store and clocks) or `model` (the decision machines alone, driven by a model of the node; faster).
            """)
    var engine: Engine = .runtime

    @Flag(help: "No crashes (the runtime engine): a crash becomes a pause, and every cast must be applied or counted as dropped.")
    var noCrashes = false

    @Flag(
        help: """
            Also run a pipeline (the runtime engine): clients append to a stream with retention that is split and merged \
            while a stage copies it to another, through outages of the stage's sink; its output must hold every \
            acknowledged record once, in order per key.
            """)
    var pipelines = false

    @Option(
        help:
            "Where the runtime engine's nodes place actors: first-receiver (default), least-loaded, consistent-hash, pinned (to a label every other node carries), or mixed (one of the first three, drawn per seed)."
    )
    var placement: PlacementChoice = .firstReceiver

    enum PlacementChoice: String, ExpressibleByArgument, CaseIterable {
        case firstReceiver = "first-receiver"
        case leastLoaded = "least-loaded"
        case consistentHash = "consistent-hash"
        case pinned
        case mixed

        var placement: Node.Placement? {
            switch self {
            case .firstReceiver: .firstReceiver
            case .leastLoaded: .leastLoaded
            case .consistentHash: .consistentHash
            case .pinned: .pinned(label: RuntimeSimulation.pinnedLabel)
            case .mixed: nil
            }
        }
    }

    @Option(help: "Seeds run at once, each on a thread (default: one per processor).")
    var parallel: Int?

    @Flag(help: .hidden)
    var worker = false

    @Option(help: .hidden)
    var seedList: String?

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
        let seeds: [UInt64] =
            try seedList.map { list in
                try list.split(separator: ",").map {
                    guard let seed = UInt64($0) else { throw ValidationError("--seed-list: \($0) is not a seed") }; return seed
                }
            } ?? seed.map { [$0] } ?? (0..<UInt64(self.seeds)).map { first + $0 }
        let simulate: @Sendable (UInt64) -> SimulationResult = {
            [nodes, actors, seconds, trace, engine, noCrashes, pipelines, placement] seed in
            var configuration = SimulationConfiguration(seed: seed)
            configuration.nodes = nodes
            configuration.actors = actors
            configuration.faultyPhase = .seconds(seconds)
            configuration.trace = trace
            configuration.crashes = !noCrashes
            configuration.pipelines = pipelines
            configuration.placement = placement.placement
            if engine == .runtime { configuration.quietPhase = .seconds(30) }
            switch engine {
            case .model: return ClusterSimulation(configuration).run()
            case .runtime: return RuntimeSimulation(configuration: configuration).run()
            }
        }
        if worker {
            // One result per line, for the process that started this one.
            let runner = SeedRunner(seeds: seeds, threads: 1, run: simulate)
            let encoder = JSONEncoder()
            while let result = runner.next() {
                FileHandle.standardOutput.write(try encoder.encode(result) + Data("\n".utf8))
            }
            return
        }
        let started = ContinuousClock.now
        var events = 0
        var counters: [String: Int] = [:]
        var failing: [String: [UInt64]] = [:]
        // Progress on a terminal, on standard error (the results stay on standard output).
        let terminal = isatty(STDERR_FILENO) == 1 && !trace
        func progress(_ line: String) { FileHandle.standardError.write(Data("\u{1B}[2K\(line)\r".utf8)) }
        let threads = min(parallel ?? ProcessInfo.processInfo.activeProcessorCount, seeds.count)
        let runner: SeedRunner
        if engine == .runtime, seeds.count > 1 {
            // A crashed node's suspended tasks can not be destroyed (a Swift task ends only by
            // running), so the runtime engine's memory grows with every seed: the seeds run in
            // worker processes, each given a bounded batch.
            var arguments = [
                "--worker", "--engine", engine.rawValue, "--nodes", "\(nodes)", "--actors", "\(actors)", "--seconds", "\(seconds)",
            ]
            if noCrashes { arguments.append("--no-crashes") }
            if pipelines { arguments.append("--pipelines") }
            if placement != .firstReceiver { arguments += ["--placement", placement.rawValue] }
            if trace { arguments.append("--trace") }
            // At most 2,000 / nodes seeds to a worker (its memory), and at least four batches
            // per thread (so every thread has work until the end).
            let batch = max(1, min(2_000 / nodes, seeds.count / (threads * 4)))
            runner = SeedRunner(seeds: seeds, threads: threads, batch: batch, workerArguments: arguments)
        } else {
            runner = SeedRunner(seeds: seeds, threads: threads, run: simulate)
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
                    "replay: dna-simulate --engine \(engine.rawValue) --seed \(result.seed) --nodes \(nodes) --actors \(actors) --seconds \(seconds)\(noCrashes ? " --no-crashes" : "")\(pipelines ? " --pipelines" : "")\(placement != .firstReceiver ? " --placement \(placement.rawValue)" : "") --trace"
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

    /// Runs the seeds in worker processes (`dna-simulate` with `workerArguments` and `--seed-list`),
    /// `batch` seeds to a process, one process per thread at a time.
    init(seeds: [UInt64], threads: Int, batch: Int, workerArguments: [String]) {
        self.seeds = seeds
        self.threads = max(1, threads)
        for _ in 0..<self.threads {
            let thread = Thread { [self] in
                while true {
                    let taken = take(batch)
                    if taken.isEmpty { break }
                    let results = runWorker(seeds: taken, arguments: workerArguments)
                    for result in results {
                        state.withLock { $0.finished.append(result) }
                        finished.signal()
                    }
                }
            }
            thread.start()
        }
    }

    /// The results of `seeds` run by a worker process; a seed it did not report (it
    /// crashed) is a violation of its own, with the worker's last words.
    private func runWorker(seeds: [UInt64], arguments: [String]) -> [SimulationResult] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = arguments + ["--seed-list", seeds.map(String.init).joined(separator: ",")]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        var results: [SimulationResult] = []
        do {
            try process.run()
            // Read at once, or a worker that writes much to it would block.
            let errorText = Mutex("")
            let errorRead = DispatchSemaphore(value: 0)
            Thread {
                let data = errors.fileHandleForReading.readDataToEndOfFile()
                errorText.withLock { $0 = String(decoding: data.suffix(2_000), as: UTF8.self) }
                errorRead.signal()
            }.start()
            let decoder = JSONDecoder()
            var buffer = Data()
            let handle = output.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = buffer[buffer.startIndex..<newline]
                    buffer = Data(buffer[buffer.index(after: newline)...])
                    // A line that does not decode leaves its seed unreported (below).
                    if let result = try? decoder.decode(SimulationResult.self, from: line), seeds.contains(result.seed) {
                        results.append(result)
                    }
                }
                if state.withLock({ $0.stopped }) { process.terminate() }
            }
            process.waitUntilExit()
            errorRead.wait()
            let reported = Set(results.map(\.seed))
            if reported.count < seeds.count, !state.withLock({ $0.stopped }) {
                let missing = seeds.filter { !reported.contains($0) }
                let last = errorText.withLock { $0 }
                for seed in missing {
                    results.append(
                        SimulationResult(
                            seed: seed,
                            violations: [
                                SimulationViolation(
                                    time: .zero, invariant: "worker-died",
                                    detail:
                                        "the worker process running seeds \(seeds.first!)… exited with status \(process.terminationStatus) before reporting this seed: \(last)"
                                )
                            ],
                            events: 0, simulatedTime: .zero, trace: [], counters: [:]))
                }
            }
        } catch {
            for seed in seeds {
                results.append(
                    SimulationResult(
                        seed: seed,
                        violations: [
                            SimulationViolation(time: .zero, invariant: "worker-died", detail: "could not start a worker process: \(error)")
                        ],
                        events: 0, simulatedTime: .zero, trace: [], counters: [:]))
            }
        }
        return results
    }

    private func take(_ count: Int) -> [UInt64] {
        state.withLock { state in
            guard !state.stopped, state.next < seeds.count else { return [] }
            let taken = Array(seeds[state.next..<min(seeds.count, state.next + count)])
            state.next += taken.count
            return taken
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
