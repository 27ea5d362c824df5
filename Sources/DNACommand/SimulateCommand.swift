import ArgumentParser
import DNATesting
import Foundation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic cluster simulation over many seeds; stop at the first violation and print its seed.",
        discussion: """
            Each seed runs N nodes and one store with the runtime's own decision machines, under faults the seed \
            chooses (delays, broken connections, pauses, crashes, drifting clocks, store stalls, failures and lost \
            acknowledgements). `--seed S --trace` replays one seed step by step.
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

    func validate() throws {
        guard nodes >= 1, nodes <= 1000 else { throw ValidationError("--nodes must be 1 to 1,000") }
        guard actors >= 1 else { throw ValidationError("--actors must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard seconds >= 1 else { throw ValidationError("--seconds must be at least 1") }
    }

    func run() throws {
        let seeds: [UInt64] = seed.map { [$0] } ?? (0..<UInt64(self.seeds)).map { first + $0 }
        let started = ContinuousClock.now
        var events = 0
        var counters: [String: Int] = [:]
        var failing: [String: [UInt64]] = [:]
        for seed in seeds {
            var configuration = SimulationConfiguration(seed: seed)
            configuration.nodes = nodes
            configuration.actors = actors
            configuration.faultyPhase = .seconds(seconds)
            configuration.trace = trace
            let result = ClusterSimulation(configuration).run()
            events += result.events
            for (name, value) in result.counters { counters[name, default: 0] += value }
            if trace { for line in result.trace { print(line) } }
            if let violation = result.violations.first {
                print("seed \(seed): VIOLATION \(violation)")
                if keepGoing {
                    failing[violation.invariant, default: []].append(seed)
                    continue
                }
                print("replay: dna simulate --seed \(seed) --nodes \(nodes) --actors \(actors) --seconds \(seconds) --trace")
                throw ExitCode(1)
            }
        }
        if !failing.isEmpty {
            for (invariant, seeds) in failing.sorted(by: { $0.key < $1.key }) {
                print("\(invariant): \(seeds.count) seeds, first \(seeds.prefix(10).map(String.init).joined(separator: " "))")
            }
            throw ExitCode(1)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "\(seeds.count) seeds, \(nodes) nodes: no violation; \(String(format: "%.1f", Double(seeds.count) / seconds)) seeds/s, \(events) events (\(String(format: "%.0f", Double(events) / seconds)) events/s)"
        )
        let interesting = counters.keys.sorted().map { "\($0)=\(counters[$0]!)" }
        print("counters: " + interesting.joined(separator: " "))
    }
}
