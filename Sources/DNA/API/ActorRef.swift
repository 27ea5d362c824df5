import Synchronization
import Tracing

/// A reference to an actor by name. Cheap to copy; the actor is activated on its first
/// message.
public struct ActorRef<A: DurableActor>: Sendable {
    @usableFromInline let target: ActorTarget

    init(target: ActorTarget) { self.target = target }

    /// The actor's name.
    public var id: ActorID { target.id }

    /// Sends `request` and waits for the response. Unless the handler replies
    /// ``ReplyTiming/immediate``, the response comes once every write the actor staged up to
    /// and including this request is durable.
    ///
    /// If the calling task is cancelled, the call throws `CancellationError` at once: before
    /// the request was sent, nothing was sent; after, the request may still be handled.
    ///
    /// - Throws: the handler's error, or a ``DNAError`` (``DNAError/isRetryable`` tells
    ///   whether trying again may help), or `CancellationError`.
    @inlinable
    public func call<R: ActorRequest>(_ request: R) async throws -> R.Response {
        if target.isTraced { return try await target.tracedCall(request) }
        return try await target.call(request, trace: nil)
    }

    /// Sends `request` without waiting. Casts from one sender are handled in the order sent.
    ///
    /// - Throws: only what is known at once: ``DNAError/Code/unhandledRequest``,
    ///   ``DNAError/Code/mailboxFull``, ``DNAError/Code/nodeStopped``, and for an actor on
    ///   another node ``DNAError/Code/overloaded`` (that node is not keeping up).
    @inlinable
    public func cast<R: ActorRequest>(_ request: R) throws(DNAError) {
        try target.send(R.self, MessageBox(request), reply: nil)
    }
}

/// Where an ``ActorRef`` sends: the actor's name and kind, and the route it last took (the
/// local activation, or the owner on another node), so repeated sends skip the node's
/// directory.
@usableFromInline
final class ActorTarget: Sendable {
    let id: ActorID
    let node: Node
    let kind: any AnyKindRuntime
    // Two slots rather than one enum, so the local path costs what it did before remote
    // routes were remembered (one optional existential copied out of the lock).
    private let activation = Mutex<(any AnyActivation)?>(nil)
    private let remote = Mutex<(owner: NodeID, address: PeerAddress, generation: UInt64)?>(nil)

    init(id: ActorID, node: Node, kind: any AnyKindRuntime) {
        self.id = id
        self.node = node
        self.kind = kind
    }

    /// Whether calls make spans (a tracer was bootstrapped).
    @usableFromInline var isTraced: Bool { node.tracer != nil }

    @inlinable
    func call<R: ActorRequest>(_ request: R, trace: MessageTrace?) async throws -> R.Response {
        let waiter = CallWaiter()
        let response = try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<any Sendable, any Error>) in
                guard waiter.wait(on: continuation) else { return }
                do {
                    try send(R.self, MessageBox(request), reply: .local(waiter), trace: trace)
                } catch {
                    waiter.resume(with: .failure(error))
                }
            }
        } onCancel: {
            waiter.cancel()
        }
        return response as! R.Response
    }

    /// A call in a client span whose context the request carries (to other nodes too).
    @usableFromInline
    func tracedCall<R: ActorRequest>(_ request: R) async throws -> R.Response {
        guard let tracer = node.tracer else { return try await call(request, trace: nil) }
        let span = tracer.startSpan("dna.call \(kind.name)", context: InstrumentationContext.current ?? .topLevel, ofKind: .client)
        span.attributes["dna.actor"] = id.description
        span.attributes["dna.request"] = R.requestName
        defer { span.end() }
        do {
            return try await call(request, trace: MessageTrace(span.context))
        } catch {
            span.recordError(error)
            throw error
        }
    }

    @usableFromInline
    func send(
        _ requestType: any ActorRequest.Type, _ message: any AnyObject & Sendable, reply: Reply?, trace: MessageTrace? = nil
    ) throws(DNAError) {
        let type = ObjectIdentifier(requestType)
        guard kind.handles(type) else {
            throw DNAError(.unhandledRequest, "actor kind '\(kind.name)' has no handler for \(requestType.requestName)")
        }
        var envelope = Envelope(requestType: type, message: message, reply: reply)
        envelope.trace = trace
        if let cached = activation.withLock({ $0 }), node.isAccepting {
            switch cached.enqueue(envelope) {
            case .accepted: return
            case .full: throw node.mailboxFull(id)
            case .stopped: break
            }
        } else if let route = remote.withLock({ $0 }), route.generation == node.locations.generation, node.isAccepting {
            try node.sendRemote(envelope, to: id, kind: kind, owner: route.owner, address: route.address)
            return
        }
        switch try node.deliver(envelope, to: id, kind: kind) {
        case .local(let reached):
            activation.withLock { $0 = reached }
            remote.withLock { $0 = nil }
        case .remote(let owner, let address, let generation):
            activation.withLock { $0 = nil }
            remote.withLock { $0 = generation.map { (owner, address, $0) } }
        }
    }
}

/// What a node knows about one actor type: its handlers, and how to make activations.
/// The runtime's own request every kind handles by doing nothing: sent to the node an
/// actor moved to, so it activates there at once rather than on its next message (its
/// load shows in that node's count, and rebalancing sees it).
struct ActivationWake: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.wake" }
}

protocol AnyKindRuntime: Sendable {
    var name: String { get }
    func handles(_ requestType: ObjectIdentifier) -> Bool
    /// The handler of a request type.
    func handler(for requestType: ObjectIdentifier) -> HandlerEntry?
    /// The handler registered for a request type's wire name: a node decodes only these.
    func handler(named requestName: String) -> (ObjectIdentifier, HandlerEntry)?
    func makeActivation(id: ActorID, node: Node) -> any AnyActivation
    var isMovable: Bool { get }
    /// Where activations of this kind start (the type's choice, or the node's).
    var placement: Node.Placement { get }
    /// The node's features this kind has a role in: told when an activation starts.
    var features: [any NodeFeature] { get }
}

final class KindRuntime<A: DurableActor>: AnyKindRuntime {
    let name: String
    var isMovable: Bool { A.isMovable }
    let placement: Node.Placement
    let handlers: Handlers<A>
    let features: [any NodeFeature]
    private let byName: [String: (ObjectIdentifier, HandlerEntry)]

    init(_ type: A.Type, placement: Node.Placement, features: [any NodeFeature]) {
        name = A.kind.name
        self.placement = A.placement ?? placement
        var handlers = Handlers<A>()
        A.handlers(&handlers)
        handlers.on(ActivationWake.self, reply: .immediate) { _, _, _ in }
        // Handled by the activation itself; registered so other nodes' fires decode here.
        handlers.on(AlarmFire.self, reply: .immediate) { _, _, _ in }
        var roles: [any NodeFeature] = []
        for feature in features {
            guard let role = feature.role(of: type) else { continue }
            for (request, entry) in role.handlers { handlers.entries[request] = entry }
            roles.append(feature)
        }
        self.features = roles
        self.handlers = handlers
        var byName: [String: (ObjectIdentifier, HandlerEntry)] = [:]
        for (type, entry) in handlers.entries { byName[entry.requestName] = (type, entry) }
        self.byName = byName
    }

    func handles(_ requestType: ObjectIdentifier) -> Bool { handlers.entries.index(forKey: requestType) != nil }
    func handler(for requestType: ObjectIdentifier) -> HandlerEntry? { handlers.entries[requestType] }
    func handler(named requestName: String) -> (ObjectIdentifier, HandlerEntry)? { byName[requestName] }

    func makeActivation(id: ActorID, node: Node) -> any AnyActivation {
        Activation(id: id, kind: self, node: node)
    }
}
