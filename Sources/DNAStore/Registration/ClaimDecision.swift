/// The registration rule, as a pure function every engine applies inside its transaction.
///
/// - A name never registered is inserted at epoch 1.
/// - A name with no owner (released on passivation or shutdown), or whose owner is dead
///   (left, or silent past the owner's own failure timeout by the store's clock), is taken
///   over at epoch + 1.
/// - A name owned by the claimant itself is granted again at epoch + 1: a new activation
///   fences off any older activation of the same node generation.
/// - A name owned by a live node stays with it.
public enum ClaimDecision: Equatable, Sendable {
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

    public static func decide(current: Current?, claimant: NodeID) -> ClaimDecision {
        guard let current else { return .insert(epoch: 1) }
        guard let owner = current.owner, owner != claimant else {
            return .takeOver(epoch: current.epoch + 1)
        }
        if let node = current.ownerNode, node.isAlive {
            return .ownedElsewhere(owner)
        }
        return .takeOver(epoch: current.epoch + 1)
    }
}
