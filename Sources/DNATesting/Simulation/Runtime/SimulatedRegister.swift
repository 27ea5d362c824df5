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
    }
}
