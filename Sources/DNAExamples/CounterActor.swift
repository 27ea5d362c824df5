package import DNA

/// A built-in example actor: a durable counter that also counts its own activations in its
/// storage, so a test (or an operator) can tell that a name never ran twice at once.
package final class CounterActor: DurableActor {
    package static let kind: ActorKind = "counter"

    /// Adds `amount`; answers the new total once durable.
    package struct Add: ActorRequest {
        package typealias Response = Int
        package var amount: Int
        package init(amount: Int) { self.amount = amount }
    }

    /// Where the counter runs, its total and how often it was activated.
    package struct Info: ActorRequest {
        package typealias Response = Report
        package init() {}
    }

    package struct Report: Codable, Sendable, Equatable {
        package var node: String
        package var activations: Int
        package var total: Int
    }

    struct State: Codable, Sendable {
        var activations = 0
        var total = 0
    }

    let state: Value<State>
    let node: String

    package init(context: ActorContext) async throws {
        state = try context.value("state", default: State())
        var updated = state.value
        updated.activations += 1
        try state.set(updated)
        node = context.nodeID.rawValue
    }

    package static func handlers(_ h: inout Handlers<CounterActor>) {
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
