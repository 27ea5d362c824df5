@testable import DNA
import DNAExamples
import DNAPostgres
import DNATesting
import Foundation
import DNATestSupport
import Testing

/// A test actor whose alarm handler records each run, and throws the first `failures`
/// times an alarm goes off.
final class Alarmed: DurableActor {
    static let kind: ActorKind = "alarmed"
    /// Each run of a handler: actor key, alarm name, wall time (ms), node.
    static let runs = Locked<[(key: String, alarm: String, at: Int64, node: String)]>([])
    /// Handlers of these actor keys throw this many times first.
    static let failures = Locked<[String: Int]>([:])

    struct Set: ActorRequest {
        typealias Response = Void
        var name: String
        var afterMilliseconds: Int64
        var repeatingSeconds: Int?
        var thenFail = false
    }
    struct Cancel: ActorRequest {
        typealias Response = Void
        var name: String
    }
    struct Pending: ActorRequest {
        typealias Response = [String]
    }
    struct Count: ActorRequest {
        typealias Response = Int
    }
    struct Boom: Error {}

    let key: String
    let handled: Value<Int>

    init(context: ActorContext) async throws {
        key = context.id.key
        handled = try context.value("handled", default: 0)
    }

    static func handlers(_ h: inout Handlers<Alarmed>) {
        h.on(Set.self) { _, set, context in
            try context.setAlarm(
                set.name, at: WallClockTime.now + .milliseconds(set.afterMilliseconds),
                repeating: set.repeatingSeconds.map { .seconds($0) })
            if set.thenFail { throw Boom() }
        }
        h.on(Cancel.self) { _, cancel, context in context.cancelAlarm(cancel.name) }
        h.on(Pending.self) { _, _, context in context.alarms.map(\.name) }
        h.on(Count.self) { actor, _, _ in actor.handled.value }
    }

    func alarm(_ name: String, context: ActorContext) async throws {
        Alarmed.runs.withLock { $0.append((key, name, WallClockTime.now.milliseconds, context.nodeID.rawValue)) }
        let fail = Alarmed.failures.withLock { failures -> Bool in
            guard let left = failures[key], left > 0 else { return false }
            failures[key] = left - 1
            return true
        }
        if fail { throw Boom() }
        try handled.set(handled.value + 1)
    }
}

@Suite("Durable alarms", .integration, .serialized)
struct AlarmTests {
    private func runs(_ key: String) -> [(key: String, alarm: String, at: Int64, node: String)] {
        Alarmed.runs.withLock { $0.filter { $0.key == key } }
    }

    private func configuration(_ path: String) -> Node.Configuration {
        var configuration = Node.Configuration(store: .sqlite(path: path))
        configuration.alarmPollInterval = .milliseconds(100)
        return configuration
    }

    @Test func anAlarmFiresOnTimeOnceAndARepeatingOneKeepsGoingAcrossARestart() async throws {
        let directory = try TemporaryDirectory()
        let first = try Node(configuration: configuration(directory.databasePath), actors: [Alarmed.self])
        try await first.withRunning { node in
            let ref = try node.ref(Alarmed.self, key: "clock")
            let setAt = WallClockTime.now.milliseconds
            try await ref.call(Alarmed.Set(name: "once", afterMilliseconds: 300))
            try await ref.call(Alarmed.Set(name: "tick", afterMilliseconds: 100, repeatingSeconds: 1))
            #expect(try await eventually { runs("clock").filter { $0.alarm == "tick" }.count >= 2 })
            let once = runs("clock").filter { $0.alarm == "once" }
            #expect(once.count == 1)
            if let at = once.first?.at { #expect(at >= setAt + 300 && at < setAt + 1300, "fired \(at - setAt) ms after it was set") }
            #expect(try await ref.call(Alarmed.Pending()) == ["tick"])
        }
        // The repeating alarm was stored: a new node on the file keeps firing it.
        let before = runs("clock").filter { $0.alarm == "tick" }.count
        let second = try Node(configuration: configuration(directory.databasePath), actors: [Alarmed.self])
        try await second.withRunning { node in
            #expect(try await eventually { runs("clock").filter { $0.alarm == "tick" }.count >= before + 1 })
            #expect(runs("clock").last?.node == node.id.rawValue)
            try await node.ref(Alarmed.self, key: "clock").call(Alarmed.Cancel(name: "tick"))
            #expect(try await node.ref(Alarmed.self, key: "clock").call(Alarmed.Pending()) == [])
        }
    }

    @Test func aThrowingHandlerIsRetriedWithBackOffAndItsWritesDiscarded() async throws {
        let directory = try TemporaryDirectory()
        Alarmed.failures.withLock { $0["flaky"] = 2 }
        let node = try Node(configuration: configuration(directory.databasePath), actors: [Alarmed.self])
        try await node.withRunning { node in
            let ref = try node.ref(Alarmed.self, key: "flaky")
            try await ref.call(Alarmed.Set(name: "job", afterMilliseconds: 0))
            #expect(try await eventually { runs("flaky").count >= 3 })
            let times = runs("flaky").map(\.at)
            #expect(times.count == 3)
            if times.count == 3 {
                // 1 s, then 2 s (each at least, give or take one poll).
                #expect(times[1] - times[0] >= 900, "\(times[1] - times[0]) ms")
                #expect(times[2] - times[1] >= 1900, "\(times[2] - times[1]) ms")
            }
            #expect(try await ref.call(Alarmed.Count()) == 1)
            #expect(try await ref.call(Alarmed.Pending()) == [])
        }
    }

    @Test func badInputIsAClearErrorAndAnAlarmInThePastFiresNow() async throws {
        let directory = try TemporaryDirectory()
        let node = try Node(configuration: configuration(directory.databasePath), actors: [Alarmed.self])
        try await node.withRunning { node in
            let ref = try node.ref(Alarmed.self, key: "bad")
            let short = await #expect(throws: DNAError.self) {
                try await ref.call(Alarmed.Set(name: "x", afterMilliseconds: 10, repeatingSeconds: 0))
            }
            #expect(short?.code == .invalidArgument)
            let empty = await #expect(throws: DNAError.self) { try await ref.call(Alarmed.Set(name: "", afterMilliseconds: 10)) }
            #expect(empty?.code == .invalidArgument)
            // A message that throws sets nothing.
            await #expect(throws: (any Error).self) {
                try await ref.call(Alarmed.Set(name: "undone", afterMilliseconds: 60_000, thenFail: true))
            }
            #expect(try await ref.call(Alarmed.Pending()) == [])
            for index in 0..<ActorContext.maxAlarms { try await ref.call(Alarmed.Set(name: "a\(index)", afterMilliseconds: 600_000)) }
            let tooMany = await #expect(throws: DNAError.self) {
                try await ref.call(Alarmed.Set(name: "one-more", afterMilliseconds: 600_000))
            }
            #expect(tooMany?.code == .invalidArgument)
            #expect(tooMany?.message.contains("\(ActorContext.maxAlarms) alarms") == true)
            // Moving an existing one is fine; one in the past fires at once.
            try await ref.call(Alarmed.Set(name: "a0", afterMilliseconds: -60_000))
            #expect(try await eventually { runs("bad").contains { $0.alarm == "a0" } })
        }
    }

    enum NameStore: String, CaseIterable, CustomTestStringConvertible {
        case sqlite, memory, postgres
        var testDescription: String { rawValue }
    }

    /// "é" precomposed (NFC) and decomposed (NFD): equal to Swift's `==`, two rows in the
    /// store. They are two alarms in memory too: cancelling one leaves the other, a reload
    /// finds exactly it, it fires once and its row goes (none is left to fire again).
    @Test(arguments: NameStore.allCases)
    func alarmNamesAreToldApartByTheirBytes(_ kind: NameStore) async throws {
        let directory = try TemporaryDirectory()
        let choice: Node.StoreChoice
        switch kind {
        case .sqlite: choice = .sqlite(path: directory.databasePath)
        case .memory: choice = .custom(InMemoryStore())
        case .postgres:
            guard let url = try await TestPostgres.freshDatabase() else { return }
            choice = .postgres(url: url)
        }
        func makeNode() throws -> Node {
            var configuration = Node.Configuration(store: choice)
            configuration.alarmPollInterval = .milliseconds(100)
            return try Node(configuration: configuration, actors: [Alarmed.self])
        }
        let nfc = "\u{E9}"
        let nfd = "e\u{301}"
        #expect(nfc == nfd)
        func bytes(_ names: [String]) -> [[UInt8]] { names.map { Array($0.utf8) } }
        let key = "accents-\(kind)"
        try await makeNode().withRunning { node in
            let ref = try node.ref(Alarmed.self, key: key)
            try await ref.call(Alarmed.Set(name: nfc, afterMilliseconds: 4000))
            try await ref.call(Alarmed.Set(name: nfd, afterMilliseconds: 4000))
            // By their bytes: "e" (0x65) comes before 0xC3.
            #expect(bytes(try await ref.call(Alarmed.Pending())) == bytes([nfd, nfc]))
            try await ref.call(Alarmed.Cancel(name: nfc))
            #expect(bytes(try await ref.call(Alarmed.Pending())) == bytes([nfd]))
            let rows = try await node.store.dueAlarms(before: .max, limit: 100).filter { $0.actor.key == key }
            #expect(bytes(rows.map(\.name)) == bytes([nfd]))
        }
        // A new node loads the actor from its rows.
        try await makeNode().withRunning { node in
            let ref = try node.ref(Alarmed.self, key: key)
            #expect(bytes(try await ref.call(Alarmed.Pending())) == bytes([nfd]))
            #expect(try await eventually { !runs(key).isEmpty })
            #expect(
                try await eventuallyAsync { try await node.store.dueAlarms(before: .max, limit: 100).allSatisfy { $0.actor.key != key } })
            #expect(try await ref.call(Alarmed.Pending()) == [])
            #expect(bytes(runs(key).map(\.alarm)) == bytes([nfd]))
        }
    }

    @Test func alarmsOfADrainedNodeFireOnTheNodesItsActorsMovedTo() async throws {
        guard
            let cluster = try await TestCluster.start(
                .sqlite, actors: [Alarmed.self], configure: { _, configuration in configuration.alarmPollInterval = .milliseconds(100) })
        else { return }
        let (a, b, c) = (cluster.nodes[0], cluster.nodes[1], cluster.nodes[2])
        for index in 0..<12 {
            try await a.ref(Alarmed.self, key: "moved-\(index)").call(Alarmed.Set(name: "later", afterMilliseconds: 1500))
        }
        try await a.drain()
        #expect(try await eventually { (0..<12).allSatisfy { index in runs("moved-\(index)").contains { $0.alarm == "later" } } })
        let nodes = Set((0..<12).compactMap { runs("moved-\($0)").first?.node })
        #expect(nodes.isSubset(of: [b.id.rawValue, c.id.rawValue]), "\(nodes)")
        await cluster.shutdown()
    }

    @Test(.timeLimit(.minutes(2)))
    func alarmsSurviveASIGKILLOfTheirOwner() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        var nodes: [NodeProcess] = []
        for _ in 0..<3 { nodes.append(try await NodeProcess.start(store: store, arguments: ["--rebalance", "off"])) }
        defer { for node in nodes { node.stop() } }
        let owner = try nodes[0].client()
        let due = WallClockTime.now.milliseconds + 1500
        for index in 0..<20 {
            try await owner.call(AlarmActor.Arm(alarms: ["wake": due, "later": due + 500]), kind: "alarms", key: "killed-\(index)")
        }
        await owner.shutdown()
        nodes[0].kill()
        // Nobody sends these actors anything until their alarms had time to fire: the
        // surviving nodes must find them (the owner is dead) and activate them themselves.
        let lastDue = due + 500
        let settled = lastDue + 1500 + 2000  // failure timeout, then two seconds
        try await Task.sleep(for: .milliseconds(max(0, settled - WallClockTime.now.milliseconds)))
        let checkedAt = WallClockTime.now.milliseconds
        let other = try nodes[1].client()
        var fired = 0
        for index in 0..<20 {
            let report = try await retrying { try await other.call(AlarmActor.Report(), kind: "alarms", key: "killed-\(index)") }.value
            fired += report.fired.values.filter { times in times.contains { $0 < checkedAt } }.count
            #expect(report.pending.isEmpty)
        }
        #expect(fired == 40)
        await other.shutdown()
    }
}
