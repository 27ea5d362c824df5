import DNA
import Foundation
import Testing

/// `dna rebalance` as a user runs it, on a store whose nodes reported their loads.
@Suite("dna rebalance")
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
            try await store.join(node: node, cluster: "c", address: "10.0.0.\(name.suffix(1) == "a" ? 1 : 2):7400", failureTimeout: .seconds(60))
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
        let notDry = try runDNA(["rebalance", "--store", store, "--cluster", "c"])
        #expect(notDry.status != 0)
        #expect(notDry.error.contains("--dry-run"))
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
        try await single.join(node: NodeID(rawValue: "only"), cluster: "c", address: "x:1", failureTimeout: .seconds(60))
        try await single.heartbeat(node: NodeID(rawValue: "only"), state: .draining, activations: 7)
        await single.close()
        let last = try runDNA(["rebalance", "--store", "sqlite:" + lonely.databasePath, "--cluster", "c", "--dry-run"])
        #expect(last.status != 0)
        #expect(last.error.contains("noEligibleNode") || last.error.contains("no live node takes actors"))
    }
}
