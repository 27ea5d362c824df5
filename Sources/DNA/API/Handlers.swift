/// The table of request handlers of an actor type, built once per node by
/// ``DurableActor/handlers(_:)``.
public struct Handlers<Actor: DurableActor>: Sendable {
    struct Entry: Sendable {
        var timing: ReplyTiming
        var requestName: String
        var invoke: @Sendable (Actor, any Sendable, ActorContext) async throws -> any Sendable
    }

    var entries: [ObjectIdentifier: Entry] = [:]

    init() {}

    /// Handles requests of type `R`.
    ///
    /// - Parameters:
    ///   - reply: when the response is released; see ``ReplyTiming``.
    ///   - body: runs with the actor, the request and the actor's context. Writes it makes
    ///     to storage modules commit with its batch; if it throws, its writes are discarded
    ///     and the caller gets the error.
    public mutating func on<R: ActorRequest>(
        _ type: R.Type, reply: ReplyTiming = .afterCommit,
        _ body: @escaping @Sendable (Actor, R, ActorContext) async throws -> R.Response
    ) {
        entries[ObjectIdentifier(type)] = Entry(
            timing: reply, requestName: R.requestName,
            invoke: { actor, message, context in try await body(actor, message as! R, context) })
    }
}
