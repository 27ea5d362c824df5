import DNA

/// The test actor: a KV module, a durable activation counter, and in-memory traces of
/// what it handled and in which order.
final class Recorder: DurableActor {
    static let kind: ActorKind = "recorder"

    struct Put: ActorRequest {
        typealias Response = Void
        var key: String
        var value: String
    }
    struct Get: ActorRequest {
        typealias Response = String?
        var key: String
    }
    struct Peek: ActorRequest {
        typealias Response = String?
        var key: String
    }
    struct Delete: ActorRequest {
        typealias Response = Void
        var key: String
    }
    struct List: ActorRequest {
        typealias Response = [String]
        var prefix: String = ""
        var after: String? = nil
        var limit: Int = 100
    }
    /// Writes, then throws.
    struct PutThenFail: ActorRequest {
        typealias Response = Void
        var key: String
        var value: String
    }
    struct PutUnencodable: ActorRequest {
        typealias Response = Void
    }
    struct Seq: ActorRequest {
        typealias Response = Void
        var number: Int
    }
    struct SeqReport: ActorRequest {
        typealias Response = [Int]  // [last seen, order violations, handled]
    }
    struct Activations: ActorRequest {
        typealias Response = Int
    }
    struct Deactivate: ActorRequest {
        typealias Response = Void
    }
    struct Note: ActorRequest {
        typealias Response = Void
        var label: String
    }
    struct TellSelf: ActorRequest {
        typealias Response = Void
        var label: String
    }
    struct Schedule: ActorRequest {
        typealias Response = Void
        var label: String
        var milliseconds: Int
    }
    struct Notes: ActorRequest {
        typealias Response = [String]
    }
    struct Overlaps: ActorRequest {
        typealias Response = Int
    }
    struct ListNow: ActorRequest {
        typealias Response = [String]
    }
    struct Count: ActorRequest {
        typealias Response = Int
    }
    struct Unhandled: ActorRequest {
        typealias Response = Void
    }
    /// The node hosting the activation.
    struct Host: ActorRequest {
        typealias Response = String
    }

    let kv: KV<String, String>
    let activations: Value<Int>
    let broken: KV<String, Unencodable>
    let key: String
    var lastSeen = -1
    var violations = 0
    var handled = 0
    var notes: [String] = []
    var inHandler = false
    var overlaps = 0

    init(context: ActorContext) async throws {
        key = context.id.key
        kv = try context.kv("kv")
        activations = try context.value("activations", default: 0)
        broken = try context.kv("broken")
        try activations.set(activations.value + 1)
        if let gate = TestHooks.activationGate(for: key) { await gate.wait() }
    }

    static func handlers(_ h: inout Handlers<Recorder>) {
        h.on(Put.self) { actor, put, _ in
            try await actor.exclusive { try actor.kv.write(put.value, for: put.key) }
        }
        h.on(Get.self) { actor, get, _ in
            TestHooks.report("get:\(get.key)", from: actor.key)
            return actor.kv.read(get.key)
        }
        h.on(Peek.self, reply: .immediate) { actor, get, _ in actor.kv.read(get.key) }
        h.on(Delete.self) { actor, delete, _ in try actor.kv.delete(delete.key) }
        h.on(List.self) { actor, list, _ in
            try actor.kv.list(prefix: list.prefix, after: list.after, limit: list.limit).map { "\($0.key)=\($0.value)" }
        }
        h.on(PutThenFail.self) { actor, put, _ in
            try actor.kv.write(put.value, for: put.key)
            try actor.activations.set(-1)
            throw TestFailure(reason: "refused \(put.key)")
        }
        h.on(PutUnencodable.self) { actor, _, _ in try actor.broken.write(Unencodable(), for: "x") }
        h.on(Seq.self) { actor, seq, _ in
            if seq.number != actor.lastSeen + 1 { actor.violations += 1 }
            actor.lastSeen = seq.number
            actor.handled += 1
        }
        h.on(SeqReport.self) { actor, _, _ in [actor.lastSeen, actor.violations, actor.handled] }
        h.on(Activations.self) { actor, _, _ in actor.activations.value }
        h.on(Deactivate.self) { _, _, context in context.deactivate() }
        h.on(Note.self) { actor, note, _ in
            actor.notes.append(note.label)
            TestHooks.report(note.label, from: actor.key)
        }
        h.on(TellSelf.self) { actor, tell, context in
            actor.notes.append("tell:\(tell.label)")
            try context.tell(Note(label: tell.label))
        }
        h.on(Schedule.self) { _, schedule, context in
            context.schedule(Note(label: schedule.label), after: .milliseconds(schedule.milliseconds))
        }
        h.on(Notes.self) { actor, _, _ in actor.notes }
        h.on(Overlaps.self) { actor, _, _ in actor.overlaps }
        h.on(ListNow.self, reply: .immediate) { actor, _, _ in
            try actor.kv.list(limit: 1000).map { "\($0.key)=\($0.value)" }
        }
        h.on(Count.self) { actor, _, _ in actor.kv.count }
        h.on(Host.self) { _, _, context in context.nodeID.rawValue }
    }

    /// Runs `body` with a suspension inside, noting if another handler ever ran meanwhile.
    private func exclusive(_ body: () throws -> Void) async throws {
        if inHandler { overlaps += 1 }
        inHandler = true
        defer { inHandler = false }
        await Task.yield()
        try body()
    }
}
