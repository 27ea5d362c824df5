/// The kind of an actor: a stable name for its type, part of every actor name.
public struct ActorKind: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
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
    /// storage modules here (``ActorContext/kv(_:)``, ``ActorContext/value(_:default:)``).
    /// Writes made here are committed before the first message is handled.
    init(context: ActorContext) async throws

    /// Declares which requests the actor handles.
    static func handlers(_ handlers: inout Handlers<Self>)

    /// Whether activations of this type may be moved to another node (``Node/migrate(_:to:)``,
    /// and later draining and rebalancing). `true` unless the type says otherwise.
    static var isMovable: Bool { get }
}

extension DurableActor {
    public static var isMovable: Bool { true }
}
