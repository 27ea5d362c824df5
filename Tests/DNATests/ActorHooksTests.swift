@testable import DNA
import Foundation
import DNATestSupport
import Testing

/// A test actor with every hook: it records them, and keeps an in-memory count of the
/// messages it handled that it hands over when it moves.
final class Tracked: DurableActor {
    static let kind: ActorKind = "tracked"
    /// What every activation's hooks did, by actor key.
    static let log = Locked<[String: [String]]>([:])

    struct Bump: ActorRequest {
        typealias Response = Int
    }
    struct Peek: ActorRequest {
        typealias Response = Int
    }
    struct Leave: ActorRequest {
        typealias Response = Void
    }
    struct Stored: ActorRequest {
        typealias Response = Int
    }
    struct Transient: Codable { var handled: Int }

    let key: String
    let stored: Value<Int>
    /// Not stored: handed over when the actor moves.
    var handled: Int

    init(context: ActorContext) async throws {
        key = context.id.key
        stored = try context.value("stored", default: 0)
        handled = try context.handedOverState(Transient.self)?.handled ?? 0
        note("init handled=\(handled)")
    }

    private func note(_ text: String) { Tracked.log.withLock { $0[key, default: []].append(text) } }

    static func handlers(_ h: inout Handlers<Tracked>) {
        h.on(Bump.self) { actor, _, _ in
            actor.handled += 1
            try actor.stored.set(actor.stored.value + 1)
            return actor.handled
        }
        h.on(Peek.self) { actor, _, _ in actor.handled }
        h.on(Leave.self) { _, _, context in context.deactivate() }
        h.on(Stored.self) { actor, _, _ in actor.stored.value }
    }

    func stateToHandOver() -> (any Encodable)? { Transient(handled: handled) }
    func didActivate(context: ActorContext) async { note("didActivate") }
    func didCommit(messages: Int, context: ActorContext) async { note("didCommit \(messages)") }
    func willDeactivate(reason: DeactivationReason, context: ActorContext) async {
        // Dropped: nothing commits after this hook.
        try? stored.set(-1)
        note("willDeactivate \(reason)")
    }
}

/// An actor pinned to nodes labelled `batch`.
final class PinnedWorker: DurableActor {
    static let kind: ActorKind = "pinned-worker"
    static var placement: Node.Placement? { .pinned(label: "batch") }

    struct Where: ActorRequest {
        typealias Response = String
    }

    init(context: ActorContext) async throws {}

    static func handlers(_ h: inout Handlers<PinnedWorker>) {
        h.on(Where.self) { _, _, context in context.nodeID.rawValue }
    }
}

@Suite("Actor hooks, events, hand-over of transient state, placement", .integration, .serialized)
struct ActorHooksTests {
    @Test func hooksRunAroundTheActivationsLife() async throws {
        let directory = try TemporaryDirectory()
        let node = try Node(configuration: .init(store: .sqlite(path: directory.databasePath)), actors: [Tracked.self])
        try await node.withRunning { node in
            let ref = try node.ref(Tracked.self, key: "life")
            #expect(try await ref.call(Tracked.Bump()) == 1)
            try await ref.call(Tracked.Leave())
            await node.settleActivations()
            #expect(try await ref.call(Tracked.Bump()) == 1)  // in memory only: a fresh activation
            await node.settleActivations()
            await node.passivateIdle(olderThan: .zero)
        }
        let log = Tracked.log.withLock { $0["life"] ?? [] }
        #expect(
            log == [
                "init handled=0", "didActivate", "didCommit 1", "willDeactivate requested",
                "init handled=0", "didActivate", "didCommit 1", "willDeactivate idle",
            ], "\(log)")
        // The write made in willDeactivate was dropped.
        let again = try Node(configuration: .init(store: .sqlite(path: directory.databasePath)), actors: [Tracked.self])
        let stored = try await again.withRunning { node in
            try await node.ref(Tracked.self, key: "life").call(Tracked.Stored())
        }
        #expect(stored == 2)
    }

    @Test func aMovedActorGetsItsTransientStateOnceAndEventsComeInOrder() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 2, actors: [Tracked.self]) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        let ref = try a.ref(Tracked.self, key: "mover")
        let eventsA = a.events()
        let eventsB = b.events()
        for _ in 0..<5 { _ = try await ref.call(Tracked.Bump()) }
        let id = ActorID(namespace: "test", kind: "tracked", key: "mover")
        try await a.migrate(id, to: b.id)
        // The count in memory came along.
        #expect(try await ref.call(Tracked.Bump()) == 6)
        #expect(b.activationCount == 1)
        var seenA: [NodeEvent] = []
        for await event in eventsA {
            seenA.append(event)
            if case .actorDeactivated = event { break }
        }
        #expect(seenA.count == 3)
        guard seenA.count == 3, case .actorActivated(id, let epoch) = seenA[0] else {
            Issue.record("\(seenA)")
            return
        }
        #expect(seenA[1] == .actorMigrated(id, from: a.id, to: b.id, fromEpoch: epoch, toEpoch: epoch + 1))
        #expect(seenA[2] == .actorDeactivated(id, reason: .migrated))
        for await event in eventsB {
            if case .actorActivated(let actor, let newEpoch) = event {
                // Handed over at epoch + 1; B's claim of the name it was given may go one further.
                #expect(actor == id && newEpoch > epoch)
                break
            }
        }
        // Read once: after passivation the next activation starts from 0 again. (Passivated
        // once idle: the last call's reply comes before its activation's task ends.)
        await b.settleActivations()
        await b.passivateIdle(olderThan: .zero)
        #expect(b.activationCount == 0)
        #expect(try await ref.call(Tracked.Bump()) == 1)
        await cluster.shutdown()
    }

    @Test func nodeEventsShowADrainAndTheLeave() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, actors: [Tracked.self]) else { return }
        let (a, c) = (cluster.nodes[0], cluster.nodes[2])
        let eventsA = a.events()
        let eventsC = c.events()
        try await c.drain()
        // C itself saw both, in order, and its sequence ended as it stopped.
        var seenByC: [NodeEvent] = []
        for await event in eventsC { seenByC.append(event) }
        #expect(seenByC.filter { $0 == .nodeDraining(c.id) || $0 == .nodeLeft(c.id) } == [.nodeDraining(c.id), .nodeLeft(c.id)])
        // A sees C leave at its next membership read.
        try await a.refreshMembers()
        var seenByA: [NodeEvent] = []
        for await event in eventsA {
            seenByA.append(event)
            if event == .nodeLeft(c.id) { break }
        }
        #expect(seenByA.last == .nodeLeft(c.id))
        await cluster.shutdown()
    }

    @Test func leastLoadedSpreadsNewActorsAndPinnedOnesGoWhereTheLabelIs() async throws {
        guard
            let cluster = try await TestCluster.start(
                .sqlite, placement: .leastLoaded, actors: [Recorder.self, PinnedWorker.self],
                configure: { index, configuration in if index == 1 { configuration.cluster!.labels = ["batch"] } })
        else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        for index in 0..<300 { try await a.ref(Recorder.self, key: "new-\(index)").call(Recorder.Put(key: "k", value: "v")) }
        let counts = [a, b, c].map(\.activationCount)
        #expect(counts.reduce(0, +) == 300)
        #expect(counts.allSatisfy { $0 < 200 }, "\(counts)")
        #expect(counts.filter { $0 > 0 }.count >= 2, "\(counts)")
        // Pinned: whoever calls, it runs on B; it cannot be moved to an unlabelled node.
        #expect(try await c.ref(PinnedWorker.self, key: "p").call(PinnedWorker.Where()) == b.id.rawValue)
        let error = await #expect(throws: DNAError.self) {
            try await b.migrate(ActorID(namespace: "test", kind: "pinned-worker", key: "p"), to: a.id)
        }
        #expect(error?.code == .invalidArgument)
        await cluster.shutdown()
    }

    @Test func aKindPinnedToALabelNoLiveNodeCarriesIsRefused() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 2, actors: [PinnedWorker.self]) else { return }
        let error = await #expect(throws: DNAError.self) {
            try await cluster.nodes[0].ref(PinnedWorker.self, key: "p").call(PinnedWorker.Where())
        }
        #expect(error?.code == .noEligibleNode)
        await cluster.shutdown()
    }
}
