import DNATesting
import Foundation
import Testing

/// The deterministic cluster simulation, a slice of what `dna-simulate` runs at scale.
@Suite("Cluster simulation")
struct SimulationTests {
    static func run(_ seeds: ClosedRange<UInt64>, nodes: Int) -> [String] {
        var failures: [String] = []
        for seed in seeds {
            var configuration = SimulationConfiguration(seed: seed)
            configuration.nodes = nodes
            let result = ClusterSimulation(configuration).run()
            if let violation = result.violations.first {
                failures.append("seed \(seed): \(violation) — replay with dna-simulate --seed \(seed) --nodes \(nodes) --trace")
            }
        }
        return failures
    }

    @Test("200 seeds of 3 nodes: one owner, fenced writes, no acknowledged write lost, FIFO per sender, every call answered")
    func threeNodes() {
        let failures = Self.run(1...200, nodes: 3)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test("60 seeds of 5 nodes")
    func fiveNodes() {
        let failures = Self.run(10_001...10_060, nodes: 5)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
    }

    @Test("a seed replays exactly: the same events, the same outcome")
    func deterministic() {
        var configuration = SimulationConfiguration(seed: 42)
        configuration.trace = true
        let first = ClusterSimulation(configuration).run()
        let second = ClusterSimulation(configuration).run()
        #expect(first.events > 4_000)
        #expect(first.events == second.events)
        #expect(first.trace == second.trace)
        #expect(first.counters == second.counters)
        #expect((first.counters["fault.pause"] ?? 0) + (first.counters["fault.crash"] ?? 0) > 0, "faults were injected")
        #expect((first.counters["call.succeeded"] ?? 0) > 100, "calls went through")
    }
}
