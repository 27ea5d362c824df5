@testable import DNA
import Foundation
import Synchronization
import DNATestSupport
import Testing

/// `Node.migrate`: an activation moves to another node with its data, its queue and its
/// callers, under load.
@Suite("Live migration", .integration, .serialized)
struct MigrationTests {
    /// An actor that opted out of moving.
    final class Pinned: DurableActor {
        static let kind: ActorKind = "pinned"
        static var isMovable: Bool { false }
        struct Host: ActorRequest { typealias Response = String }
        init(context: ActorContext) async throws {}
        static func handlers(_ h: inout Handlers<Pinned>) { h.on(Host.self) { _, _, context in context.nodeID.rawValue } }
    }

    @Test(arguments: Backend.allCases)
    func anActorMovedUnderLoadKeepsEveryWriteAndItsCallersSeeNoError(backend: Backend) async throws {
        guard let cluster = try await TestCluster.start(backend) else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        let onA = try a.ref(Recorder.self, key: "mover")
        _ = try await onA.call(Recorder.Activations())
        let errors = Locked<[String]>([])
        let moved = Locked(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Writers on all three nodes, each in order, while the actor moves from A to B.
            for (index, node) in cluster.nodes.enumerated() {
                group.addTask {
                    let ref = try node.ref(Recorder.self, key: "mover")
                    for step in 0..<150 {
                        do { try await ref.call(Recorder.Put(key: "n\(index)-\(step)", value: "\(step)")) } catch {
                            errors.withLock { $0.append("\(error)") }
                        }
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(20))
                try await a.migrate(onA.id, to: b.id)
                moved.withLock { $0 = true }
            }
            try await group.waitForAll()
        }
        #expect(moved.withLock { $0 })
        #expect(errors.withLock { $0 }.isEmpty, "callers saw: \(errors.withLock { Array($0.prefix(3)) })")
        let viaC = try c.ref(Recorder.self, key: "mover")
        #expect(try await viaC.call(Recorder.Host()) == b.id.rawValue)
        #expect(try await viaC.call(Recorder.Count()) == 450)
        #expect(try await viaC.call(Recorder.Activations()) == 2, "one activation on A, one on B")
        // Each writer's last write is there: nothing was reordered or lost on the way.
        for index in 0..<3 { #expect(try await viaC.call(Recorder.Get(key: "n\(index)-149")) == "149") }
        // The old owner forwards to the new one and never answers from its old instance.
        #expect(try await onA.call(Recorder.Host()) == b.id.rawValue)
        await cluster.shutdown()
    }

    @Test func anActorThatOptedOutStaysAndBadTargetsAreRefused() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, actors: [Recorder.self, Pinned.self]) else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        let pinned = try a.ref(Pinned.self, key: "p")
        _ = try await pinned.call(Pinned.Host())
        let notMovable = await #expect(throws: DNAError.self) { try await a.migrate(pinned.id, to: b.id) }
        #expect(notMovable?.code == .notMovable)
        #expect(try await pinned.call(Pinned.Host()) == a.id.rawValue)

        let recorder = try a.ref(Recorder.self, key: "r")
        try await recorder.call(Recorder.Put(key: "k", value: "v"))
        for (target, reason) in [(a.id, "on this node already"), (NodeID(rawValue: "nobody"), "not a member")] {
            let error = await #expect(throws: DNAError.self) { try await a.migrate(recorder.id, to: target) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        }
        let notHere = await #expect(throws: DNAError.self) { try await b.migrate(recorder.id, to: c.id) }
        #expect(notHere?.message.contains("not active on this node") == true)
        // A node that left cannot take actors.
        await c.shutdown()
        try await a.refreshMembers()
        let gone = await #expect(throws: DNAError.self) { try await a.migrate(recorder.id, to: c.id) }
        #expect(gone?.code == .invalidArgument)
        // Nothing was lost or moved by the refusals.
        #expect(try await recorder.call(Recorder.Host()) == a.id.rawValue)
        #expect(try await recorder.call(Recorder.Get(key: "k")) == "v")
        #expect(try await recorder.call(Recorder.Activations()) == 1)
        await cluster.shutdown()
    }

    @Test func aMoveToATargetThatFailsOverLosesNoAcknowledgedWrite() async throws {
        guard let cluster = try await TestCluster.start(.sqlite) else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        let onA = try a.ref(Recorder.self, key: "racing")
        for step in 0..<20 { try await onA.call(Recorder.Put(key: "before-\(step)", value: "\(step)")) }
        // B stops reaching the store just as the name is handed to it: its lease runs out,
        // and once it is declared dead another node takes the name over.
        cluster.stores[1].failHeartbeats(true)
        try await a.migrate(onA.id, to: b.id)
        // Writes through C go on: B serves while its lease lasts, then nobody until B is
        // declared dead, then the node that takes the name over.
        let viaC = try c.ref(Recorder.self, key: "racing")
        var acknowledged: [String] = []
        var host = b.id.rawValue
        let deadline = ContinuousClock.now + .seconds(20)
        var step = 0
        while host == b.id.rawValue, ContinuousClock.now < deadline {
            step += 1
            do {
                try await viaC.call(Recorder.Put(key: "after-\(step)", value: "\(step)"))
                acknowledged.append("after-\(step)")
                host = try await viaC.call(Recorder.Host())
            } catch let error as DNAError {
                #expect(error.isRetryable || error.code == .outcomeUnknown, "\(error)")
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(host != b.id.rawValue, "the name left the node that failed")
        for step in 0..<20 { #expect(try await viaC.call(Recorder.Get(key: "before-\(step)")) == "\(step)") }
        for key in acknowledged { #expect(try await viaC.call(Recorder.Get(key: key)) != nil, "acknowledged \(key) lost") }
        cluster.stores[1].failHeartbeats(false)
        await cluster.shutdown()
    }
}
