import DNA

/// The actor the runtime simulation drives: a log of appended ids, stored as one document.
/// Every answer is the whole log, so the checks can compare what each call saw.
final class SimulatedRegister: DurableActor {
    static let kind: ActorKind = "register"

    /// Appends `id`; answers the log after it.
    struct Append: ActorRequest {
        typealias Response = [String]
        var id: String
    }

    /// Answers the log.
    struct Read: ActorRequest {
        typealias Response = [String]
    }

    /// Sets the alarm `id` to go off after `milliseconds`; answers the log. When it goes
    /// off, `alarm:<id>` is appended (once, however often the alarm is handled).
    struct Arm: ActorRequest {
        typealias Response = [String]
        var id: String
        var milliseconds: Int64
    }

    static func alarmEntry(_ id: String) -> String { "alarm:" + id }

    let log: Value<[String]>

    init(context: ActorContext) async throws {
        log = try context.value("log", default: [])
    }

    static func handlers(_ h: inout Handlers<SimulatedRegister>) {
        h.on(Append.self) { actor, append, _ in
            try actor.log.update { $0.append(append.id) }
            return actor.log.value
        }
        h.on(Read.self) { actor, _, _ in actor.log.value }
        h.on(Arm.self) { actor, arm, context in
            try context.setAlarm(arm.id, after: .milliseconds(arm.milliseconds))
            return actor.log.value
        }
    }

    func alarm(_ name: String, context: ActorContext) async throws {
        let entry = Self.alarmEntry(name)
        if !log.value.contains(entry) { try log.update { $0.append(entry) } }
    }
}
