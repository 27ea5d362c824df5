import DNA
import Foundation
import DNATestSupport
import Testing

/// `dna status` on a store with nodes and names.
@Suite("dna status", .integration, .serialized)
struct StatusCommandTests {
    @Test func nodesShowStateAgeActivationsAndLabelsAndNamesCountPerKind() async throws {
        let directory = try TemporaryDirectory()
        var configuration = SQLiteStore.Configuration(path: directory.databasePath)
        configuration.sharing = .shared
        let store = SQLiteStore(configuration: configuration)
        try await store.open()
        let (a, b) = (NodeID(rawValue: "node-a"), NodeID(rawValue: "node-b"))
        try await store.join(node: a, cluster: "c", address: "10.0.0.1:7400", failureTimeout: .seconds(60), labels: ["gpu", "zone:eu"])
        try await store.join(node: b, cluster: "c", address: "10.0.0.2:7400", failureTimeout: .seconds(60), labels: [])
        try await store.heartbeat(node: a, state: .up, activations: 3)
        try await store.heartbeat(node: b, state: .draining, activations: 1)
        for (kind, key, node) in [("kv", "x", a), ("kv", "y", a), ("counter", "z", a), ("kv", "w", b)] {
            _ = try await store.activate(ActivationRequest(actor: ActorID(namespace: "n", kind: kind, key: key), node: node))
        }
        await store.close()
        let run = try runDNA(["status", "--store", "sqlite:" + directory.databasePath, "--cluster", "c", "--kinds"])
        #expect(run.status == 0, "\(run.error)")
        let lines = run.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(
            lines.contains { $0.first == "node-a" && $0.contains("up") && $0.contains("3") && $0.last == "gpu,zone:eu" }, "\(run.output)")
        #expect(lines.contains { $0.first == "node-b" && $0.contains("draining") && $0.last == "1" }, "\(run.output)")
        #expect(lines.contains { $0 == ["kv", "node-a", "2"] }, "\(run.output)")
        #expect(lines.contains { $0 == ["kv", "node-b", "1"] }, "\(run.output)")
        #expect(lines.contains { $0 == ["counter", "node-a", "1"] }, "\(run.output)")
        let nowhere = try runDNA(["status", "--cluster", "c"])
        #expect(nowhere.status != 0)
        #expect(nowhere.error.contains("name the store with --store or DNA_STORE"), "\(nowhere.error)")
    }
}
