/// The registration rule, as a pure function every engine applies inside its transaction.
///
/// - A name never registered is inserted at epoch 1.
/// - A name with no owner (released on passivation or shutdown), or whose owner is dead
///   (left, or silent past the owner's own failure timeout by the store's clock), is taken
///   over at epoch + 1 — an owner that did not leave only if the claimant also watched it
///   silent (``ActivationRequest/silentNodes``: its heartbeat mark unchanged for its
///   failure timeout by the claimant's monotonic clock, the mark it still has). The store's
///   clock is a wall clock: a forward jump ages every heartbeat at once, while the owner
///   still serves until its lease (80 % of its failure timeout after its last heartbeat, by
///   its own monotonic clock) ends. The claimant's watch ends after that, whatever the
///   store's clock did.
/// - A name owned by the claimant itself is granted again at epoch + 1: a new activation
///   fences off any older activation of the same node generation.
/// - A name owned by a live node stays with it.
@_spi(StoreEngine) public enum ClaimDecision: Equatable, Sendable {
    case insert(epoch: Int64)
    case takeOver(epoch: Int64)
    case ownedElsewhere(NodeID)

    /// The current registration row of a name, as the claimant reads it in its transaction.
    public struct Current: Sendable {
        public var owner: NodeID?
        public var epoch: Int64
        /// The owner's node row; `nil` when it has none (forgotten).
        public var ownerNode: NodeRecord?

        public init(owner: NodeID?, epoch: Int64, ownerNode: NodeRecord?) {
            self.owner = owner
            self.epoch = epoch
            self.ownerNode = ownerNode
        }
    }

    /// - Parameter silentNodes: ``ActivationRequest/silentNodes`` (`nil`: the store's clock alone).
    public static func decide(current: Current?, claimant: NodeID, silentNodes: [NodeID: Int64]? = nil) -> ClaimDecision {
        guard let current else { return .insert(epoch: 1) }
        guard let owner = current.owner, owner != claimant else {
            return .takeOver(epoch: current.epoch + 1)
        }
        if let node = current.ownerNode {
            if node.isAlive { return .ownedElsewhere(owner) }
            if node.state != .left, let silentNodes, silentNodes[owner] != node.heartbeatStamp {
                // Dead by the store's clock only: the claimant has not watched it silent for
                // its failure timeout, or it has made a heartbeat since.
                return .ownedElsewhere(owner)
            }
        }
        return .takeOver(epoch: current.epoch + 1)
    }
}
