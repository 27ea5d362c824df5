import DNAStore

/// A part of the runtime that only some actor types need (pipelines): what it adds to those
/// types' kinds, the kinds it runs itself, and what it hears of the node. The node's core
/// calls these hooks and knows nothing else of a feature; a feature exists on a node only
/// if one of the node's actor types needs it (``Node/featureMakers``).
protocol NodeFeature: AnyObject, Sendable {
    /// Actor types the feature runs itself (a stage's leader): the node hosts them too.
    var ownActors: [any DurableActor.Type] { get }
    /// What a kind of `type` handles for the feature; `nil` if the type has no part in it.
    func role<A: DurableActor>(of type: A.Type) -> KindRole?
    /// An activation of a kind with a role in the feature was granted its name.
    func activationStarted(_ id: ActorID, on node: Node)
    /// A commit that appended to `streams` succeeded, or the node appended to them itself.
    func appended(to streams: [StreamName], on node: Node)
    /// The feature's loops, run while the node serves (cancelled when it stops).
    func run(on node: Node) async
}

/// What a feature adds to a kind.
struct KindRole {
    /// Handlers for the feature's own requests (a stage's pull), by request type.
    var handlers: [(ObjectIdentifier, HandlerEntry)]
}

extension Node {
    /// Makes the features the node's actor types need. One entry per feature.
    static let featureMakers: [@Sendable ([any DurableActor.Type]) -> (any NodeFeature)?] = [
        { actors in PipelineFeature(actors: actors) }
    ]

    /// The node's feature of type `F`, if its actor types need it.
    func feature<F: NodeFeature>(_ type: F.Type) -> F? {
        for feature in features { if let found = feature as? F { return found } }
        return nil
    }
}
