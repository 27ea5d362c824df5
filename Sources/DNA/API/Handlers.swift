/// The table of request handlers of an actor type, built once per node by
/// ``DurableActor/handlers(_:)``.
public struct Handlers<Actor: DurableActor>: Sendable {
    @usableFromInline
    var entries: [ObjectIdentifier: HandlerEntry] = [:]

    init() {}

    /// Handles requests of type `R`.
    ///
    /// - Parameters:
    ///   - type: the request type.
    ///   - reply: when the response is released; see ``ReplyTiming``.
    ///   - body: runs with the actor, the request and the actor's context. Writes it makes
    ///     to storage modules commit with its batch; if it throws, its writes are discarded
    ///     and the caller gets the error.
    @inlinable
    public mutating func on<R: ActorRequest>(
        _ type: R.Type, reply: ReplyTiming = .afterCommit,
        _ body: @escaping @Sendable (Actor, R, ActorContext) async throws -> R.Response
    ) {
        entries[ObjectIdentifier(type)] = HandlerEntry(
            timing: reply, requestName: R.requestName, codec: RemoteCodec(for: R.self),
            invoke: { actor, message, context in
                // The activation holds an `Actor`, and the envelope's request type was
                // matched to R before the call.
                try await body(
                    unsafeDowncast(actor, to: Actor.self), unsafeDowncast(message, to: MessageBox<R>.self).value, context)
            })
    }
}

/// One handler, with the actor and the request type erased (so the handler table is one
/// concrete dictionary type, fast to look up). A class: it is read for every message, and
/// copying a struct of five closures and a string cost a retain and a release of each.
@usableFromInline
final class HandlerEntry: Sendable {
    @usableFromInline let timing: ReplyTiming
    @usableFromInline let requestName: String
    /// The runtime's own requests (`dna.…`): not counted as users' casts.
    @usableFromInline let isInternal: Bool
    /// How the request and its response cross the network.
    @usableFromInline let codec: RemoteCodec
    @usableFromInline let invoke: @Sendable (AnyObject, any AnyObject & Sendable, ActorContext) async throws -> any Sendable

    @inlinable
    init(
        timing: ReplyTiming, requestName: String, codec: RemoteCodec,
        invoke: @escaping @Sendable (AnyObject, any AnyObject & Sendable, ActorContext) async throws -> any Sendable
    ) {
        self.timing = timing
        self.requestName = requestName
        self.isInternal = requestName.hasPrefix("dna.")
        self.codec = codec
        self.invoke = invoke
    }
}

/// A request on its way through a mailbox. A class, so the handler can take the value out
/// without a dynamic cast.
@usableFromInline
final class MessageBox<Message: Sendable>: Sendable {
    @usableFromInline let value: Message

    @inlinable
    init(_ value: Message) { self.value = value }
}
