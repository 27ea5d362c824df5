import DNAStore
import DNATransport

/// Where a message for a name goes: to its activation here, to a new activation here
/// (which claims the name), to another node, or nowhere.
///
/// Pure: the node's facts in, one step out. A step may be a question for the location
/// cache or the membership view, whose lookups each take a lock: the driver
/// (``Node/deliver(_:to:kind:claimHere:)``) records the answer and asks for the next step,
/// so a lookup is made only when the decision reaches it, and a message for an activation
/// here makes none.
package struct RoutingDecision: Sendable {
    package enum Step: Sendable, Equatable {
        /// The activation here takes it.
        case useLocal
        /// A new activation here takes it.
        case activateHere
        /// Send it to `owner`; remember the route only with a `generation` (see ``Answer``).
        case forward(owner: NodeID, address: PeerAddress, generation: UInt64?)
        case refuse(Refusal)
        /// Answer `question` (``record(_:for:)``), then ask for the next step.
        case lookUp(Question)
    }

    package enum Question: Sendable, Hashable {
        /// Where the location cache last found the name, with the cache's generation read
        /// before the owner (a change after the read then shows as a new generation).
        case cachedLocation
        /// Consistent hashing: the node the name hashes to among those taking actors, this
        /// one included (`Membership.placement(of:this:)`).
        case hashedNode
        /// Least loaded: the less loaded of two nodes picked at random, this one among them
        /// (`Membership.leastLoaded(this:thisLoad:)`).
        case lessLoadedNode
        /// Pinned: the node the name hashes to among the other live nodes carrying `label`
        /// and taking actors (`Membership.placement(of:excluding:label:)`).
        case labelledNode(String)
        /// Draining: the node the name hashes to among the other live nodes taking actors
        /// (`Membership.placement(of:excluding:)`).
        case otherNode
    }

    /// What a lookup found.
    package enum Answer: Sendable, Equatable {
        /// No node other than this one.
        case nobody
        /// The location cache names a node the membership now counts dead. Its entry can
        /// outlive the view's change (an activation records the owner the store named after
        /// a read of the membership that forgot the dead node's entries), and a call sent
        /// there waits until the next read fails it, again and again: the name is placed as
        /// if nothing were cached, and a claim here takes it over once this node has watched
        /// the owner silent. The driver forgets the entry.
        case dead(NodeID)
        /// `generation`: the location cache's; `nil` for a placement, which is not
        /// remembered (it changes with the membership, which has no generation).
        case node(NodeID, PeerAddress, generation: UInt64?)

        package static func placed(_ found: (NodeID, PeerAddress)?) -> Answer {
            guard let (node, address) = found else { return .nobody }
            return .node(node, address, generation: nil)
        }

        var forward: Step? {
            guard case .node(let owner, let address, let generation) = self else { return nil }
            return .forward(owner: owner, address: address, generation: generation)
        }
    }

    package enum Refusal: Sendable, Equatable {
        case shuttingDown
        case noEligibleNode(label: String)
        /// The node left the cluster after a drain: it forwards for a moment, claims nothing.
        case leftCluster

        package func error(node: NodeID, actor: ActorID) -> DNAError {
            switch self {
            case .shuttingDown:
                DNAError(.nodeStopped, "node \(node) is shutting down")
            case .noEligibleNode(let label):
                DNAError(.noEligibleNode, "\(actor) runs only on nodes labelled '\(label)', and none is live and taking actors")
            case .leftCluster:
                DNAError(.routingFailed, "node \(node) left the cluster; \(actor) is served by another node")
            }
        }
    }

    // The facts.
    package var accepting: Bool
    package var hasLocalActivation: Bool
    /// The node has a transport: other nodes may host the name.
    package var clustered: Bool
    /// The node this one believed to host the name sent the message here: one of them is
    /// wrong, so a local activation claims the name and the store decides.
    package var claimHere: Bool
    package var drained: Bool
    package var hasLeft: Bool
    package var hops: UInt8
    package var placement: Node.Placement
    package var labels: [String]
    /// The node that sent the message here, if another node did.
    package var sender: NodeID?

    // The answers so far; `nil` until asked.
    package var cachedLocation: Answer?
    /// The answer to the kind's own placement question.
    package var placed: Answer?
    package var otherNode: Answer?

    package init(
        accepting: Bool, hasLocalActivation: Bool, clustered: Bool, claimHere: Bool, drained: Bool, hasLeft: Bool,
        hops: UInt8, placement: Node.Placement, labels: [String]
    ) {
        self.accepting = accepting
        self.hasLocalActivation = hasLocalActivation
        self.clustered = clustered
        self.claimHere = claimHere
        self.drained = drained
        self.hasLeft = hasLeft
        self.hops = hops
        self.placement = placement
        self.labels = labels
    }

    package mutating func record(_ answer: Answer, for question: Question) {
        switch question {
        case .cachedLocation: cachedLocation = answer
        case .hashedNode, .lessLoadedNode, .labelledNode: placed = answer
        case .otherNode: otherNode = answer
        }
    }

    package func next() -> Step {
        guard accepting else { return .refuse(.shuttingDown) }
        if hasLocalActivation { return .useLocal }
        // A node that left claims nothing.
        let claimsHere = claimHere && !hasLeft
        guard clustered, !claimsHere else { return .activateHere }
        guard let cachedLocation else { return .lookUp(.cachedLocation) }
        if let forward = cachedLocation.forward { return forward }
        switch placement {
        case .firstReceiver:
            break
        case .consistentHash:
            guard let placed else { return .lookUp(.hashedNode) }
            if case .node(let node, _, _) = placed, node == sender, !hasLeft {
                // The node the name hashes to sent it here: its claim found the name owned
                // here (the hash moved with the membership, the name did not). Sent back, it
                // would go to and fro until its hops ran out; a claim here asks the store.
                return .activateHere
            }
            if let forward = placed.forward { return forward }
        case .leastLoaded:
            // Another node chose this one (hops > 0): it claims the name.
            if hops == 0, !drained {
                guard let placed else { return .lookUp(.lessLoadedNode) }
                if let forward = placed.forward { return forward }
            }
        case .pinned(let label):
            if !labels.contains(label) || drained {
                guard let placed else { return .lookUp(.labelledNode(label)) }
                return placed.forward ?? .refuse(.noEligibleNode(label: label))
            }
        }
        if drained {
            // A draining node takes no new names: another node claims it.
            guard let otherNode else { return .lookUp(.otherNode) }
            if let forward = otherNode.forward { return forward }
        }
        if hasLeft { return .refuse(.leftCluster) }
        return .activateHere
    }
}
