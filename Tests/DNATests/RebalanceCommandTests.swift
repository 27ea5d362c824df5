import DNA
import DNAExamples
import Foundation
import DNATestSupport
import Testing

/// `dna rebalance` as a user runs it, on a store whose nodes reported their loads.
@Suite("dna rebalance", .integration, .serialized)
struct RebalanceCommandTests {
    /// A store whose three nodes reported 3,000, 0 and 0 activations (one of them draining
    /// if asked).
    private func store(in directory: TemporaryDirectory, drainingFirst: Bool = false) async throws -> String {
        var configuration = SQLiteStore.Configuration(path: directory.databasePath)
        configuration.sharing = .shared
        let store = SQLiteStore(configuration: configuration)
        try await store.open()
        for (name, activations) in [("node-a", 3000), ("node-b", 0), ("node-c", 0)] {
            let node = NodeID(rawValue: name)
            try await store.join(
                node: node, cluster: "c", address: "10.0.0.\(name.suffix(1) == "a" ? 1 : 2):7400", failureTimeout: .seconds(60), labels: [])
            let state: NodeState = drainingFirst && name == "node-a" ? .draining : .up
            try await store.heartbeat(node: node, state: state, activations: Int64(activations))
        }
        await store.close()
        return "sqlite:" + directory.databasePath
    }

    @Test func aDryRunPrintsTheFirstRoundOfMoves() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(in: directory)
        let run = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--dry-run"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("move 250 from node-a to node-b"))
        #expect(run.output.contains("move 250 from node-a to node-c"))
        #expect(run.output.contains("this round: 500 move(s); 1500 more in later rounds"))
        let limited = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--dry-run", "--max-moves", "10", "--exclude", "node-c"])
        #expect(limited.status == 0, "\(limited.error)")
        #expect(limited.output.contains("move 10 from node-a to node-b"))
        #expect(!limited.output.contains("to node-c"))
    }

    @Test(.timeLimit(.minutes(2)))
    func aRoundAskedOfRunningNodesMovesActorsAndKeepsTheirData() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        var nodes: [NodeProcess] = []
        for _ in 0..<3 { nodes.append(try await NodeProcess.start(store: store, arguments: ["--rebalance", "off"])) }
        defer { for node in nodes { node.stop() } }
        let first = try nodes[0].client()
        for index in 0..<40 {
            try await first.call(KVActor.Put(key: "k", value: "\(index)"), kind: "kv", key: "moved-\(index)")
        }
        // Let a heartbeat report the activations.
        try await Task.sleep(for: .milliseconds(500))
        let run = try runDNA(["rebalance", "--store", store, "--cluster", "test", "--timeout", "30"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("asked 3 node(s)"), "\(run.output)")
        // One round with the default limits: a quarter of the 40 activations move, 5 to each other node.
        let line = run.output.split(separator: "\n").first { $0.hasPrefix(nodes[0].id) }.map(String.init) ?? ""
        #expect(line.hasSuffix("40        30"), "\(run.output)")
        for index in 0..<40 {
            let value = try await retrying { try await first.call(KVActor.Get(key: "k"), kind: "kv", key: "moved-\(index)") }.value
            #expect(value == "\(index)")
        }
        await first.shutdown()
    }

    @Test func aDrainingNodeGivesEverything() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(in: directory, drainingFirst: true)
        let run = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--dry-run", "--max-fraction", "1", "--max-moves", "5000"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("move 1500 from node-a to node-b"))
        #expect(run.output.contains("move 1500 from node-a to node-c"))
    }

    @Test func badInputIsAClearErrorAndChangesNothing() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(in: directory)
        let notDry = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--max-moves", "10"])
        #expect(notDry.status != 0)
        #expect(notDry.error.contains("--dry-run"))
        // Nodes that never make the round asked of them: the command says which, in time.
        let silent = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--timeout", "0.5"])
        #expect(silent.status != 0)
        #expect(silent.error.contains("3 node(s) had not made their round"), "\(silent.error)")
        let unknown = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--dry-run", "--exclude", "node-z"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("no live node node-z"))
        let limits = try runDNA(["rebalance", "--store", store, "--cluster", "c", "--dry-run", "--max-fraction", "2"])
        #expect(limits.status != 0)
        #expect(limits.error.contains("maxFraction"))
        let noStore = try runDNA(["rebalance", "--store", "sqlite:" + directory.path + "/missing.db", "--dry-run"])
        #expect(noStore.status != 0)
        #expect(noStore.error.contains("no database at"))
        // A cluster whose only node drains: the moves have nowhere to go.
        let lonely = try TemporaryDirectory()
        var configuration = SQLiteStore.Configuration(path: lonely.databasePath)
        configuration.sharing = .shared
        let single = SQLiteStore(configuration: configuration)
        try await single.open()
        try await single.join(node: NodeID(rawValue: "only"), cluster: "c", address: "x:1", failureTimeout: .seconds(60), labels: [])
        try await single.heartbeat(node: NodeID(rawValue: "only"), state: .draining, activations: 7)
        await single.close()
        let last = try runDNA(["rebalance", "--store", "sqlite:" + lonely.databasePath, "--cluster", "c", "--dry-run"])
        #expect(last.status != 0)
        #expect(last.error.contains("noEligibleNode") || last.error.contains("no live node takes actors"))
        let nobody = try runDNA(["rebalance", "--store", "sqlite:" + lonely.databasePath, "--cluster", "c"])
        #expect(nobody.status != 0)
        #expect(nobody.error.contains("no live node of cluster c takes actors"), "\(nobody.error)")
    }
}
