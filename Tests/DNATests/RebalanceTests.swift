@testable import DNA
import Foundation
import DNATestSupport
import Testing

/// Rebalancing rounds carried out by the nodes: a node that joins gets its share while
/// callers see no error, `Node.rebalance()` and `dna rebalance` make a round now.
@Suite("Rebalancing", .integration, .serialized)
struct RebalanceTests {
    /// Calls from `callers` to `actors` names, round robin, until `stop` is set; the errors.
    private func load(_ callers: [Node], actors: Int, until stop: Locked<Bool>, writes: Locked<Int>) async -> [String] {
        await withTaskGroup(of: [String].self) { group in
            for (lane, node) in callers.enumerated() {
                group.addTask {
                    var errors: [String] = []
                    var step = 0
                    while !stop.withLock({ $0 }) {
                        step += 1
                        do {
                            try await node.ref(Recorder.self, key: "actor-\((step * 7 + lane) % actors)").call(
                                Recorder.Put(key: "\(lane)-\(step)", value: "v"))
                            writes.withLock { $0 += 1 }
                        } catch { errors.append("\(error)") }
                    }
                    return errors
                }
            }
            var all: [String] = []
            for await errors in group { all += errors }
            return all
        }
    }

    private func withinTolerance(_ nodes: [Node]) -> Bool {
        let loads = nodes.map { RebalancePlanner.NodeLoad(id: $0.id, activations: $0.activationCount) }
        return RebalancePlanner.maxDeviation(loads) <= 0.1
    }

    @Test func aNodeThatJoinsGetsItsShareWhileCallersSeeNoError() async throws {
        func enable(_: Int, _ configuration: inout Node.Configuration) {
            configuration.cluster!.rebalancing.enabled = true
            configuration.cluster!.rebalancing.interval = .milliseconds(300)
        }
        guard let cluster = try await TestCluster.start(.sqlite, count: 2, configure: enable) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        let actors = 90
        for index in 0..<actors { try await a.ref(Recorder.self, key: "actor-\(index)").call(Recorder.Put(key: "start", value: "1")) }
        // Rounds run until every node is within the tolerance (10%) of its fair share.
        let halves = try await eventually { withinTolerance([a, b]) }
        #expect(halves, "\(a.activationCount) / \(b.activationCount)")
        let stop = Locked(false)
        let writes = Locked(0)
        async let errors = load([a, b], actors: actors, until: stop, writes: writes)
        let c = try await cluster.addNode(configure: enable)
        let balanced = try await eventually { withinTolerance([a, b, c]) && c.activationCount > 0 }
        stop.withLock { $0 = true }
        let seen = await errors
        #expect(balanced, "loads \(a.activationCount) / \(b.activationCount) / \(c.activationCount)")
        #expect(seen.isEmpty, "callers saw \(seen.count) errors: \(seen.prefix(3))")
        #expect(writes.withLock { $0 } > 0)
        // Every write that was acknowledged is there: 1 start row + what the load wrote.
        var rows = 0
        for index in 0..<actors { rows += try await c.ref(Recorder.self, key: "actor-\(index)").call(Recorder.Count()) }
        #expect(rows == actors + writes.withLock { $0 })
        await cluster.shutdown()
    }

    @Test func aRoundAskedInCodeMovesThisNodesPartAndReportsIt() async throws {
        guard
            let cluster = try await TestCluster.start(
                .sqlite, configure: { _, configuration in configuration.cluster!.rebalancing.limits.maxFraction = 1 })
        else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        for index in 0..<30 { try await a.ref(Recorder.self, key: "actor-\(index)").call(Recorder.Put(key: "k", value: "v")) }
        // Heartbeats carry the counts: the others know A's now.
        try await a.renewLease(state: .up)
        let events = a.events()
        let report = try await a.rebalance()
        #expect(report.planned == 20)
        #expect(report.moved == 20)
        #expect(report.failed == 0)
        #expect(a.activationCount == 10)
        // Each moved actor activates on its new node at once, not on its next message.
        #expect(try await eventually { b.activationCount == 10 && c.activationCount == 10 }, "\(b.activationCount) / \(c.activationCount)")
        var seen: [NodeEvent] = []
        for await event in events {
            if case .actorDeactivated = event { continue }
            seen.append(event)
            if case .rebalanceFinished = event { break }
        }
        #expect(seen.first == .rebalanceStarted(round: report.round, planned: 20))
        #expect(seen.last == .rebalanceFinished(round: report.round, moved: 20, failed: 0))
        #expect(seen.filter { if case .actorMigrated = $0 { true } else { false } }.count == 20)
        // Balanced: a second round moves nothing.
        for node in [a, b, c] { try await node.renewLease(state: .up) }
        #expect(try await a.rebalance().planned == 0)
        await cluster.shutdown()
    }

    @Test func excludedAndPinnedActorsStayWhereTheyAre() async throws {
        guard
            let cluster = try await TestCluster.start(
                .sqlite, actors: [Recorder.self, PinnedWorker.self],
                configure: { index, configuration in
                    if index == 2 { configuration.cluster!.labels = ["batch"] }
                    configuration.cluster!.rebalancing.excludedLabels = ["batch"]
                    configuration.cluster!.rebalancing.limits.maxFraction = 1
                })
        else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        for index in 0..<10 { try await a.ref(Recorder.self, key: "actor-\(index)").call(Recorder.Put(key: "k", value: "v")) }
        // Pinned to "batch": they run on C whoever calls.
        for index in 0..<6 { _ = try await a.ref(PinnedWorker.self, key: "pinned-\(index)").call(PinnedWorker.Where()) }
        #expect(c.activationCount == 6)
        try await a.renewLease(state: .up)
        try await c.renewLease(state: .up)
        let report = try await a.rebalance()
        // C is excluded: A and B share A's 10, and C's pinned actors stay.
        #expect(report.moved == 5)
        #expect(try await eventually { a.activationCount == 5 && b.activationCount == 5 && c.activationCount == 6 })
        #expect(try await c.rebalance().planned == 0)
        await cluster.shutdown()
    }

    @Test func actorsThatAreNotMovableStayAndTheRoundSaysSo() async throws {
        guard
            let cluster = try await TestCluster.start(
                .sqlite, count: 2, actors: [MigrationTests.Pinned.self],
                configure: { _, configuration in configuration.cluster!.rebalancing.limits.maxFraction = 1 })
        else { return }
        let a = cluster.nodes[0]
        for index in 0..<8 { _ = try await a.ref(MigrationTests.Pinned.self, key: "stay-\(index)").call(MigrationTests.Pinned.Host()) }
        try await a.renewLease(state: .up)
        let report = try await a.rebalance()
        #expect(report.planned == 4)
        #expect(report.moved == 0)
        #expect(report.failed == 4)
        #expect(a.activationCount == 8)
        await cluster.shutdown()
    }

    @Test func badInputIsAClearError() async throws {
        let directory = try TemporaryDirectory()
        let single = try Node(configuration: .init(store: .sqlite(path: directory.databasePath)), actors: [Recorder.self])
        try await single.withRunning { node in
            let error = await #expect(throws: DNAError.self) { try await node.rebalance() }
            #expect(error?.code == .invalidArgument)
        }
        // A placement or labels without a cluster no longer type-check (they are `Node.Cluster`'s).
        var configuration = Node.Configuration(store: .sqlite(path: directory.databasePath))
        configuration.cluster = Node.Cluster(
            name: "c", listen: PeerAddress(host: "127.0.0.1", port: 0), secret: Array("a-test-cluster-secret-of-32-bytes".utf8))
        configuration.cluster!.labels = ["has,comma"]
        #expect(throws: DNAError.self) { try Node(configuration: configuration, actors: [Recorder.self]) }
        configuration.cluster!.labels = []
        configuration.cluster!.rebalancing.interval = .zero
        #expect(throws: DNAError.self) { try Node(configuration: configuration, actors: [Recorder.self]) }
        configuration.cluster!.rebalancing.interval = .seconds(1)
        configuration.cluster!.secret = Array("short".utf8)
        let short = #expect(throws: DNAError.self) { try Node(configuration: configuration, actors: [Recorder.self]) }
        #expect(short?.message.contains("at least 16 bytes") == true)
    }
}
