import DNA
import DNAExamples
import Foundation
import DNATestSupport
import Testing

/// `dna drain` against `dna node` processes: the node asked moves its actors and exits.
@Suite("dna drain", .integration, .serialized, .timeLimit(.minutes(2)))
struct DrainCommandTests {
    @Test func aDrainedNodeMovesItsActorsAndExits() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        var nodes: [NodeProcess] = []
        for _ in 0..<3 { nodes.append(try await NodeProcess.start(store: store, arguments: ["--rebalance", "off"])) }
        defer { for node in nodes { node.stop() } }
        let first = try nodes[0].client()
        for index in 0..<30 {
            try await first.call(KVActor.Put(key: "k", value: "\(index)"), kind: "kv", key: "drained-\(index)")
        }
        await first.shutdown()
        // Let a heartbeat report the activations.
        try await Task.sleep(for: .milliseconds(500))
        let run = try runDNA(["drain", "--store", store, "--cluster", "test", "--node", nodes[0].address.description, "--timeout", "60"])
        #expect(run.status == 0, "\(run.error)")
        #expect(run.output.contains("drained node \(nodes[0].id)"), "\(run.output)")
        #expect(run.output.contains("30 activation(s) moved"), "\(run.output)")
        // The drained process exits by itself.
        let deadline = ContinuousClock.now + .seconds(15)
        while nodes[0].process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!nodes[0].process.isRunning)
        let other = try nodes[1].client()
        for index in 0..<30 {
            let value = try await retrying { try await other.call(KVActor.Get(key: "k"), kind: "kv", key: "drained-\(index)") }.value
            #expect(value == "\(index)")
        }
        await other.shutdown()
        // Bad input: the node is gone now, and a node that does not exist.
        let again = try runDNA(["drain", "--store", store, "--cluster", "test", "--node", nodes[0].id])
        #expect(again.status != 0)
        #expect(again.error.contains("not alive"), "\(again.error)")
        let unknown = try runDNA(["drain", "--store", store, "--cluster", "test", "--node", "10.9.9.9:1"])
        #expect(unknown.status != 0)
        #expect(unknown.error.contains("no node 10.9.9.9:1"), "\(unknown.error)")
        // Down to one: the last node is refused.
        nodes[2].stop()
        try await Task.sleep(for: .milliseconds(300))
        let last = try runDNA(["drain", "--store", store, "--cluster", "test", "--node", nodes[1].id])
        #expect(last.status != 0)
        #expect(last.error.contains("last live node"), "\(last.error)")
    }
}
