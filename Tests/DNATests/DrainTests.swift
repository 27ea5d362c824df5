@testable import DNA
import Foundation
import DNATestSupport
import Testing

/// `Node.drain()` and the drain of a graceful shutdown: every activation moves to the other
/// live nodes, callers under load see no error, nothing is lost.
@Suite("Draining", .integration, .serialized)
struct DrainTests {
    /// Calls from B and C to `actors` names, round robin, until `stop` is set; the errors.
    private func load(_ cluster: TestCluster, actors: Int, until stop: Locked<Bool>, writes: Locked<Int>) async -> [String] {
        await withTaskGroup(of: [String].self) { group in
            for (lane, node) in cluster.nodes.dropFirst().enumerated() {
                group.addTask {
                    var errors: [String] = []
                    var step = 0
                    while !stop.withLock({ $0 }) {
                        step += 1
                        let key = "actor-\((step * 7 + lane) % actors)"
                        do {
                            try await node.ref(Recorder.self, key: key).call(Recorder.Put(key: "\(lane)-\(step)", value: "v"))
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

    @Test(arguments: [false, true])
    func everyActivationMovesAndCallersUnderLoadSeeNoError(throughShutdown: Bool) async throws {
        guard let cluster = try await TestCluster.start(.sqlite, drainOnShutdown: throughShutdown) else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        let actors = 60
        for index in 0..<actors { try await a.ref(Recorder.self, key: "actor-\(index)").call(Recorder.Put(key: "start", value: "1")) }
        #expect(a.activationCount == actors)
        let stop = Locked(false)
        let writes = Locked(0)
        async let errors = load(cluster, actors: actors, until: stop, writes: writes)
        // The load is under way before the node goes.
        #expect(try await eventually { writes.withLock { $0 } >= 50 })
        if throughShutdown {
            await a.shutdown()
        } else {
            let report = try await a.drain()
            #expect(report.moved == actors)
            #expect(report.stopped == 0)
        }
        // And it goes on against the new owners.
        let atMove = writes.withLock { $0 }
        #expect(try await eventually { writes.withLock { $0 } >= atMove + 100 }, "the load stalled after the move")
        stop.withLock { $0 = true }
        let seen = await errors
        #expect(seen.isEmpty, "callers saw \(seen.count) errors: \(seen.prefix(3))")
        #expect(writes.withLock { $0 } > 0)
        // Everything is on B and C now, about half each, with its data.
        var hosts: [String: Int] = [:]
        for index in 0..<actors {
            let ref = try b.ref(Recorder.self, key: "actor-\(index)")
            hosts[try await ref.call(Recorder.Host()), default: 0] += 1
            #expect(try await ref.call(Recorder.Get(key: "start")) == "1")
            #expect(try await ref.call(Recorder.Activations()) == 2, "moved once, not re-activated")
        }
        #expect(hosts[a.id.rawValue] == nil)
        #expect(hosts[b.id.rawValue, default: 0] >= actors / 2 - 5 && hosts[c.id.rawValue, default: 0] >= actors / 2 - 5, "\(hosts)")
        await cluster.shutdown()
    }

    @Test func theLastNodeCannotBeDrainedAndKeepsServing() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 1) else { return }
        let node = cluster.nodes[0]
        let ref = try node.ref(Recorder.self, key: "only")
        try await ref.call(Recorder.Put(key: "k", value: "v"))
        let error = await #expect(throws: DNAError.self) { try await node.drain() }
        #expect(error?.code == .noEligibleNode)
        #expect(try await ref.call(Recorder.Get(key: "k")) == "v")
        #expect(node.servingState == .up, "a refused drain changes nothing")
        await cluster.shutdown()
    }

    @Test func aDrainingNodeTakesNoNewNamesAndNonMovableActorsAreStopped() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, actors: [Recorder.self, MigrationTests.Pinned.self]) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        let pinned = try a.ref(MigrationTests.Pinned.self, key: "p")
        #expect(try await pinned.call(MigrationTests.Pinned.Host()) == a.id.rawValue)
        // The drain's first part (drain() then stops the node).
        let report = await a.moveActivationsAway()
        #expect(report.stopped == 1, "not movable: stopped, its name given back")
        #expect(report.moved == 0)
        #expect(a.activationCount == 0)
        // Its next message activates it elsewhere.
        let viaB = try b.ref(MigrationTests.Pinned.self, key: "p")
        let (host, _) = try await retrying { try await viaB.call(MigrationTests.Pinned.Host()) }
        #expect(host != a.id.rawValue)
        // A new name sent to the draining node is claimed by another node.
        let fresh = try a.ref(Recorder.self, key: "fresh")
        #expect(try await fresh.call(Recorder.Host()) != a.id.rawValue)
        #expect(a.activationCount == 0)
        await cluster.shutdown()
    }

    @Test func aDrainAskedThroughTheStoreMovesEverythingAndTheNodeLeaves() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        for index in 0..<20 { try await a.ref(Recorder.self, key: "asked-\(index)").call(Recorder.Put(key: "k", value: "\(index)")) }
        try await cluster.stores[0].requestDrain(node: a.id)
        // A sees it at its next membership read, drains and stops.
        let deadline = ContinuousClock.now + .seconds(15)
        while a.isRunning || a.activationCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!a.isRunning)
        for index in 0..<20 {
            let ref = try b.ref(Recorder.self, key: "asked-\(index)")
            #expect(try await ref.call(Recorder.Get(key: "k")) == "\(index)")
            #expect(try await ref.call(Recorder.Activations()) == 2, "moved, not re-activated after a failure")
        }
        await cluster.shutdown()
    }
}
