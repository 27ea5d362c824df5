import DNATransport

/// An error from the DNA runtime, with a stable ``Code``.
public struct DNAError: Error, Sendable, CustomStringConvertible {
    /// A stable error code; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name, for example `"fenced"`.
        public let name: String
        /// The code named `name`.
        public init(_ name: String) { self.name = name }
        /// The code's name.
        public var description: String { name }

        /// The actor name breaks the naming rules (see `ActorID`).
        public static let invalidName = Code("invalidName")
        /// The actor type was not given to the node.
        public static let unknownActorKind = Code("unknownActorKind")
        /// The actor has no handler for this request type.
        public static let unhandledRequest = Code("unhandledRequest")
        /// An argument is out of range (for example a list limit).
        public static let invalidArgument = Code("invalidArgument")
        /// A key or value could not be encoded for storage.
        public static let encodingFailed = Code("encodingFailed")
        /// Stored data could not be decoded as the module's type.
        public static let decodingFailed = Code("decodingFailed")
        /// The batch could not be committed (before the commit timeout, or the store refused
        /// it); the activation went back to its last durable state. Retryable unless the
        /// store's error (``underlying``) says otherwise.
        public static let commitFailed = Code("commitFailed")
        /// The activation lost its name to a newer owner. Retryable.
        public static let fenced = Code("fenced")
        /// The actor could not be activated (store unavailable, or its initialiser threw).
        public static let activationFailed = Code("activationFailed")
        /// The actor's mailbox is at capacity. Retryable.
        public static let mailboxFull = Code("mailboxFull")
        /// The node is shutting down or stopped.
        public static let nodeStopped = Code("nodeStopped")
        /// Another live node owns the actor and this node cannot forward to it (it runs
        /// without a cluster transport, or the owner's address is unknown). Retryable.
        public static let ownedElsewhere = Code("ownedElsewhere")
        /// The handler on another node threw; ``message`` holds the error's description
        /// (a local call gets the handler's own error instead).
        public static let handlerFailed = Code("handlerFailed")
        /// The node hosting the actor could not be reached, or the connection to it broke
        /// before the answer came. The request may or may not have been handled. Retryable.
        public static let nodeUnreachable = Code("nodeUnreachable")
        /// The request was forwarded ``Node/Cluster/maxHops`` times without reaching
        /// the actor's owner (the nodes' views of the cluster disagree for a moment). Retryable.
        public static let routingFailed = Code("routingFailed")
        /// The encoded request or response is larger than the transport's maximum frame.
        public static let payloadTooLarge = Code("payloadTooLarge")
        /// The request may or may not have taken effect, and nobody can know: its batch was
        /// handed to the store, whose answer was lost (the connection broke, or the commit
        /// timeout passed while an attempt was under way), or the node lost its lease after
        /// the message staged writes. Not retryable as such: send it again only if it is
        /// idempotent, or read the actor's state first.
        public static let outcomeUnknown = Code("outcomeUnknown")
        /// A later request from the same node reached the actor before this one (the way to
        /// the actor changed while this one was under way, for example when it moved). It
        /// was not handled, so that the actor handles each node's requests in the order they
        /// were sent. Retryable.
        public static let outOfOrder = Code("outOfOrder")
        /// The link to the node hosting the actor holds as many bytes as it may that the
        /// node has not taken yet (it reads slower than this node sends); nothing was sent.
        /// Retryable: slow down.
        public static let overloaded = Code("overloaded")
        /// Actors must move (a draining node's, or names without a live owner) and no live
        /// node may take them: every other node is draining, excluded or dead.
        public static let noEligibleNode = Code("noEligibleNode")
        /// The actor type opted out of moving (``DurableActor/isMovable``).
        public static let notMovable = Code("notMovable")
    }

    /// What went wrong, in a form code can test.
    public var code: Code
    /// A description for people; its wording may change.
    public var message: String
    /// The error underneath, if any (for example a `StoreError`).
    public var underlying: (any Error)?

    /// An error with `code`, a `message` for people and the error underneath, if any.
    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// Whether the same call may succeed if tried again later.
    public var isRetryable: Bool {
        if let remote = underlying as? WireError { return remote.retryable }
        switch code {
        case .fenced, .mailboxFull, .ownedElsewhere, .nodeUnreachable, .routingFailed, .overloaded, .outOfOrder: return true
        case .commitFailed: return (underlying as? StoreError)?.isRetryable ?? true
        case .activationFailed: return (underlying as? StoreError)?.isRetryable ?? false
        default: return false
        }
    }

    /// `DNAError.<code>: <message>`, followed by the underlying error if any.
    public var description: String {
        var text = "DNAError.\(code): \(message)"
        if let underlying { text += " (\(underlying))" }
        return text
    }
}
