/// A reference to an actor by name. Cheap to make and to copy; the actor is activated on
/// its first message.
public struct ActorRef<A: DurableActor>: Sendable {
    /// The actor's name.
    public let id: ActorID
    let node: Node
    let kind: KindRuntime<A>

    /// Sends `request` and waits for the response. Unless the handler replies
    /// ``ReplyTiming/immediate``, the response comes once every write the actor staged up to
    /// and including this request is durable.
    ///
    /// - Throws: the handler's error, or a ``DNAError`` (``DNAError/isRetryable`` tells
    ///   whether trying again may help).
    public func call<R: ActorRequest>(_ request: R) async throws -> R.Response {
        try kind.checkHandles(R.self)
        let response = try await withUnsafeThrowingContinuation { (continuation: ReplyContinuation) in
            do {
                try node.deliver(
                    Envelope(requestType: ObjectIdentifier(R.self), message: request, reply: continuation), to: id, kind: kind)
            } catch {
                continuation.resume(throwing: error)
            }
        }
        return response as! R.Response
    }

    /// Sends `request` without waiting. Casts from one sender are handled in the order sent.
    ///
    /// - Throws: only what is known at once: ``DNAError/Code/unhandledRequest``,
    ///   ``DNAError/Code/mailboxFull``, ``DNAError/Code/nodeStopped``.
    public func cast<R: ActorRequest>(_ request: R) throws {
        try kind.checkHandles(R.self)
        try node.deliver(Envelope(requestType: ObjectIdentifier(R.self), message: request, reply: nil), to: id, kind: kind)
    }
}

/// What a node knows about one actor type: its handlers, and how to make activations.
protocol AnyKindRuntime: Sendable {
    var name: String { get }
    func handles(_ requestType: ObjectIdentifier) -> Bool
    func makeActivation(id: ActorID, node: Node) -> any AnyActivation
}

final class KindRuntime<A: DurableActor>: AnyKindRuntime {
    let name: String
    let handlers: Handlers<A>

    init(_ type: A.Type) {
        name = A.kind.name
        var handlers = Handlers<A>()
        A.handlers(&handlers)
        self.handlers = handlers
    }

    func handles(_ requestType: ObjectIdentifier) -> Bool { handlers.entries[requestType] != nil }

    func checkHandles<R: ActorRequest>(_ type: R.Type) throws(DNAError) {
        guard handlers.entries[ObjectIdentifier(type)] != nil else {
            throw DNAError(.unhandledRequest, "actor kind '\(name)' has no handler for \(R.requestName)")
        }
    }

    func makeActivation(id: ActorID, node: Node) -> any AnyActivation {
        Activation(id: id, kind: self, node: node)
    }
}
