import DNA
import DNAExamples
import DNATesting
import Foundation
import Synchronization

/// The elastic-cluster scenarios of `dna-bench`: a drain and a rebalance under a steady
/// call load, three nodes in this process on one SQLite file.
extension BenchRunner {
    /// A steady load of calls: `lanes` callers, each on one of `nodes` in turn, each owning
    /// the actors whose index is its lane modulo `lanes` (so it knows the last value it
    /// wrote to each), calling them round robin until stopped.
    final class CallLoad: Sendable {
        struct Sample: Sendable {
            var at: Double
            var microseconds: Double
        }

        private struct State {
            var samples: [Sample] = []
            var errors: [String] = []
            var acknowledged: [Int: Int] = [:]
        }

        private let state = Mutex(State())
        private let stopped = Atomic<Bool>(false)
        private let tasks = Mutex<[Task<Void, Never>]>([])
        let start = ContinuousClock.now

        init(nodes: [Node], actors: Int, lanes: Int = 16) {
            for lane in 0..<lanes {
                let node = nodes[lane % nodes.count]
                let mine = Array(stride(from: lane, to: actors, by: lanes))
                let task = Task { [self] in await self.run(node: node, mine: mine) }
                tasks.withLock { $0.append(task) }
            }
        }

        private func run(node: Node, mine: [Int]) async {
            let origin = start
            var written: [Int: Int] = [:]
            var step = 0
            while !stopped.load(ordering: .relaxed) {
                let actor = mine[step % mine.count]
                step += 1
                let value = (written[actor] ?? 0) + 1
                let before = ContinuousClock.now
                do {
                    try await node.ref(KVActor.self, key: "elastic-\(actor)").call(KVActor.Put(key: "n", value: "\(value)"))
                    written[actor] = value
                    let after = ContinuousClock.now
                    let sample = Sample(at: seconds(before - origin), microseconds: seconds(after - before) * 1e6)
                    state.withLock { $0.samples.append(sample) }
                } catch {
                    state.withLock { $0.errors.append("\(error)") }
                }
            }
            state.withLock { $0.acknowledged.merge(written) { max($0, $1) } }
        }

        var now: Double { seconds(ContinuousClock.now - start) }

        func stop() async {
            stopped.store(true, ordering: .relaxed)
            for task in tasks.withLock({ $0 }) { await task.value }
        }

        var errors: [String] { state.withLock { $0.errors } }
        var acknowledged: [Int: Int] { state.withLock { $0.acknowledged } }

        /// Latencies of calls sent between `from` and `to` seconds after the start, sorted.
        func latencies(from: Double, to: Double) -> [Double] {
            state.withLock { $0.samples.filter { $0.at >= from && $0.at < to }.map(\.microseconds) }.sorted()
        }

        /// Writes acknowledged to a caller that the store does not hold (read through `node`).
        func lostWrites(readingThrough node: Node) async throws -> Int {
            var lost = 0
            for (actor, value) in acknowledged {
                let stored = try await node.ref(KVActor.self, key: "elastic-\(actor)").call(KVActor.Get(key: "n"))
                if Int(stored ?? "0") ?? 0 < value { lost += 1 }
            }
            return lost
        }
    }

    /// 1,000 actors on node A, called steadily from B and C; A drains. How long the drain
    /// takes, what callers saw, and whether every acknowledged write is there.
    func drain(actors: Int) async throws -> BenchReport {
        let path = "\(root)/drain-\(UUID().uuidString).db"
        let a = try await clusterNode(path: path)
        for index in 0..<actors { try await a.ref(KVActor.self, key: "elastic-\(index)").call(KVActor.Put(key: "n", value: "0")) }
        let b = try await clusterNode(path: path)
        let c = try await clusterNode(path: path)
        for node in [a, b, c] { try await node.refreshMembers() }
        let load = CallLoad(nodes: [b, c], actors: actors)
        try await Task.sleep(for: .seconds(2))
        let drainStart = load.now
        let report = try await a.drain()
        let drainEnd = load.now
        try await Task.sleep(for: .milliseconds(500))
        await load.stop()
        let before = load.latencies(from: 0.5, to: drainStart)
        let during = load.latencies(from: drainStart, to: drainEnd)
        let lost = try await load.lostWrites(readingThrough: b)
        let hosted = [b.activationCount, c.activationCount]
        await b.shutdown()
        await c.shutdown()

        var result = BenchReport(scenario: "drain")
        result.set("actors", actors)
        // Until no activation was left; then the node forwards for a moment and leaves.
        result.set("seconds", seconds(report.duration))
        result.set("seconds_until_left", drainEnd - drainStart)
        result.set("moved", report.moved)
        result.set("stopped", report.stopped)
        result.set("failed_calls", load.errors.count)
        result.set("lost_writes", lost)
        result.set("calls_before", before.count)
        result.set("calls_during", during.count)
        result.set("p99_us_before", percentile(before, 0.99))
        result.set("p99_us_during", percentile(during, 0.99))
        result.set("p99_ratio", percentile(during, 0.99) / max(1, percentile(before, 0.99)))
        result.set("hosted_after", "\(hosted[0]) / \(hosted[1])")
        if let error = load.errors.first { result.set("first_error", error) }
        return result
    }

    /// 3,000 actors on node A, called steadily; B and C join, and the nodes rebalance with
    /// the default settings until every node is within 10% of its fair share.
    func rebalance(actors: Int, limit: Duration = .seconds(60)) async throws -> BenchReport {
        let path = "\(root)/rebalance-\(UUID().uuidString).db"
        let a = try await clusterNode(path: path, rebalancing: true)
        for index in 0..<actors { try await a.ref(KVActor.self, key: "elastic-\(index)").call(KVActor.Put(key: "n", value: "0")) }
        let events = a.events()
        let load = CallLoad(nodes: [a], actors: actors)
        try await Task.sleep(for: .seconds(1))
        let joinedAt = load.now
        let b = try await clusterNode(path: path, rebalancing: true)
        let c = try await clusterNode(path: path, rebalancing: true)
        let nodes = [a, b, c]
        func deviation() -> Double {
            RebalancePlanner.maxDeviation(nodes.map { RebalancePlanner.NodeLoad(id: $0.id, activations: $0.activationCount) })
        }
        let deadline = ContinuousClock.now + limit
        while deviation() > 0.10, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let balancedAt = load.now
        let finalDeviation = deviation()
        try await Task.sleep(for: .milliseconds(500))
        await load.stop()
        await a.shutdown()
        var rounds = 0
        var moved = 0
        for await event in events {
            if case .rebalanceFinished(_, let count, _) = event, count > 0 {
                rounds += 1
                moved += count
            }
        }
        let lost = try await load.lostWrites(readingThrough: b)
        let hosted = [b.activationCount, c.activationCount]
        await b.shutdown()
        await c.shutdown()

        var result = BenchReport(scenario: "rebalance")
        result.set("actors", actors)
        result.set("rounds", rounds)
        result.set("moved", moved)
        result.set("seconds", balancedAt - joinedAt)
        result.set("max_deviation", finalDeviation)
        result.set("failed_calls", load.errors.count)
        result.set("lost_writes", lost)
        result.set("p99_us", percentile(load.latencies(from: 0.5, to: balancedAt), 0.99))
        result.set("hosted_after", "\(hosted[0]) / \(hosted[1]) (B / C, after A stopped)")
        if let error = load.errors.first { result.set("first_error", error) }
        return result
    }
}
