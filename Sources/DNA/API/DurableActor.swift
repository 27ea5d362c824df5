/// The kind of an actor: a stable name for its type, part of every actor name.
public struct ActorKind: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The kind's name, the `kind` part of actor names (`ActorID.kind`): 1 to
    /// `ActorID.maxSegmentBytes` bytes of `A-Z a-z 0-9 _ . - :`.
    public var name: String
    /// The kind named `name`.
    public init(_ name: String) { self.name = name }
    /// The kind named by a literal, as in `static let kind: ActorKind = "counter"`.
    public init(stringLiteral value: String) { self.name = value }
    /// The kind's name.
    public var description: String { name }
}

/// A durable actor: one instance per name in the cluster, activated on its first message,
/// its data kept in storage modules.
///
/// ```swift
/// final class Counter: DurableActor {
///     static let kind: ActorKind = "counter"
///     let total: Value<Int>
///     init(context: ActorContext) async throws { total = try context.value("total", default: 0) }
///     static func handlers(_ h: inout Handlers<Counter>) {
///         h.on(Add.self) { counter, add, _ in try counter.total.set(counter.total.value + add.amount) }
///     }
/// }
/// ```
///
/// The runtime calls an instance from one task at a time, so its stored properties need no
/// locks. Handlers run one message at a time in arrival order; a handler that awaits
/// something holds up the actor's other messages until it returns (turn-based, as in Orleans).
public protocol DurableActor: AnyObject, SendableMetatype {
    /// The stable name of this actor type.
    static var kind: ActorKind { get }

    /// Creates the activation. Module data is already loaded when this runs: declare the
    /// storage modules here (``ActorContext/kv(_:of:)``, ``ActorContext/value(_:default:)``).
    /// Writes made here are committed before the first message is handled.
    init(context: ActorContext) async throws

    /// Declares which requests the actor handles.
    static func handlers(_ handlers: inout Handlers<Self>)

    /// Whether activations of this type may be moved to another node (``Node/migrate(_:to:)``,
    /// and later draining and rebalancing). `true` unless the type says otherwise.
    static var isMovable: Bool { get }

    /// Where an activation of this type starts when the actor is active nowhere; `nil`
    /// (the default) uses the node's ``Node/Cluster/placement``.
    static var placement: Node.Placement? { get }

    /// In-memory state to hand to the actor's activation on the node it moves to
    /// (``Node/migrate(_:to:)``, draining, rebalancing), as Orleans'
    /// `IGrainMigrationParticipant` does: called once its last batch is committed; the new
    /// activation reads it with ``ActorContext/handedOverState(_:)`` in its initialiser.
    /// It is kept in the store with the name's hand-over, so the move is one transaction,
    /// and is at most ``ActorContext/maxHandedOverStateSize`` bytes encoded. `nil` (the
    /// default): nothing. Not called when the activation stops for another reason.
    func stateToHandOver() -> (any Encodable)?

    /// Called once the activation is ready, after its initialiser's writes are committed
    /// and before its first message is handled.
    func didActivate(context: ActorContext) async

    /// Called before the activation goes away (its last batch is committed), with why.
    /// Writes made here are discarded: the activation is ending.
    func willDeactivate(reason: DeactivationReason, context: ActorContext) async

    /// Called when the alarm `name` set with ``ActorContext/setAlarm(_:at:repeating:)`` is
    /// due, on whichever node owns the actor then (activating it if needed). Its writes
    /// commit with the alarm's removal (or, for a repeating alarm, its next time), so a
    /// handled alarm is not handled again; if it throws, its writes are discarded and the
    /// alarm is retried with back-off (1 s, doubling, at most 5 minutes), without end.
    /// Alarms fire at least once: a node that fails mid-handler makes it run again.
    func alarm(_ name: String, context: ActorContext) async throws

    /// Called after a batch of this activation is durable (the original's `after_persist`),
    /// with the number of messages it held. It runs in the activation's turn, between batches.
    func didCommit(messages: Int, context: ActorContext) async
}

extension DurableActor {
    /// `true`: activations may be moved.
    public static var isMovable: Bool { true }
    /// `nil`: the node's ``Node/Cluster/placement``.
    public static var placement: Node.Placement? { nil }
    /// `nil`: nothing is handed over.
    public func stateToHandOver() -> (any Encodable)? { nil }
    /// Does nothing.
    public func didActivate(context: ActorContext) async {}
    /// Does nothing.
    public func willDeactivate(reason: DeactivationReason, context: ActorContext) async {}
    /// Does nothing.
    public func didCommit(messages: Int, context: ActorContext) async {}
    /// Does nothing: the alarm counts as handled.
    public func alarm(_ name: String, context: ActorContext) async throws {}
}

/// Why an activation ends.
public enum DeactivationReason: String, Sendable, Hashable, CustomStringConvertible {
    /// Idle for longer than ``Node/Configuration/idleTimeout``, or ``Node/passivateIdle(olderThan:)``.
    case idle
    /// The actor asked for it (``ActorContext/deactivate()``).
    case requested
    /// Moved to another node (migration, draining, rebalancing).
    case migrated
    /// The node is stopping.
    case shutdown
    /// Its name is no longer this node's (fenced), or its commits failed for good.
    case lost
    /// Its name was found active on another node.
    case ownedElsewhere

    /// The case's name, for example `idle`.
    public var description: String { rawValue }
}
