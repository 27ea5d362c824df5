import DNA

/// A built-in example actor: a durable counter that also counts its own activations in its
/// storage, so a test (or an operator) can tell that a name never ran twice at once.
public final class CounterActor: DurableActor {
    public static let kind: ActorKind = "counter"

    /// Adds `amount`; answers the new total once durable.
    public struct Add: ActorRequest {
        public typealias Response = Int
        public var amount: Int
        public init(amount: Int) { self.amount = amount }
    }

    /// Where the counter runs, its total and how often it was activated.
    public struct Info: ActorRequest {
        public typealias Response = Report
        public init() {}
    }

    public struct Report: Codable, Sendable, Equatable {
        public var node: String
        public var activations: Int
        public var total: Int
    }

    struct State: Codable, Sendable {
        var activations = 0
        var total = 0
    }

    let state: Value<State>
    let node: String

    public init(context: ActorContext) async throws {
        state = try context.value("state", default: State())
        var updated = state.value
        updated.activations += 1
        try state.set(updated)
        node = context.nodeID.rawValue
    }

    public static func handlers(_ h: inout Handlers<CounterActor>) {
        h.on(Add.self) { actor, add, _ in
            var updated = actor.state.value
            updated.total += add.amount
            try actor.state.set(updated)
            return updated.total
        }
        h.on(Info.self) { actor, _, _ in
            Report(node: actor.node, activations: actor.state.value.activations, total: actor.state.value.total)
        }
    }
}
