@testable import DNA
import DNAStore
import DNATransport
import Testing

/// Where `Node.deliver` sends a message (pure): every branch, the questions asked on the way
/// (each a lookup under a lock, so their order and absence matter), and the errors refused
/// messages get.
@Suite("Routing decision (pure)")
struct RoutingDecisionTests {
    typealias Step = RoutingDecision.Step
    typealias Question = RoutingDecision.Question
    typealias Answer = RoutingDecision.Answer

    static let (b, c) = (NodeID(rawValue: "b"), NodeID(rawValue: "c"))
    static let (addressB, addressC) = (PeerAddress(host: "10.0.0.2", port: 7400), PeerAddress(host: "10.0.0.3", port: 7400))
    static let cachedAtB = Answer.node(b, addressB, generation: 7)
    static let placedAtC = Answer.placed((c, addressC))
    static let forwardToB = Step.forward(owner: b, address: addressB, generation: 7)
    static let forwardToC = Step.forward(owner: c, address: addressC, generation: nil)

    /// A clustered node, running, without an activation of the name, first hop.
    static func decision(
        accepting: Bool = true, local: Bool = false, clustered: Bool = true, claimHere: Bool = false,
        drained: Bool = false, hasLeft: Bool = false, hops: UInt8 = 0, placement: Node.Placement = .firstReceiver,
        labels: [String] = []
    ) -> RoutingDecision {
        RoutingDecision(
            accepting: accepting, hasLocalActivation: local, clustered: clustered, claimHere: claimHere, drained: drained,
            hasLeft: hasLeft, hops: hops, placement: placement, labels: labels)
    }

    /// Runs the decision as `Node.deliver` does, answering its questions from `answers`
    /// (`nobody` for the others): every step, the last one the decision.
    static func steps(_ decision: RoutingDecision, answers: [Question: Answer] = [:]) -> [Step] {
        var decision = decision
        var steps: [Step] = []
        for _ in 0..<10 {
            let step = decision.next()
            steps.append(step)
            guard case .lookUp(let question) = step else { return steps }
            decision.record(answers[question] ?? .nobody, for: question)
        }
        Issue.record("no decision after 10 steps: \(steps)")
        return steps
    }

    /// Found by `dna-simulate --placement consistent-hash --seed 20`: the hash named c, c's
    /// claim found the name owned here, and the message went to and fro until its hops ran out.
    @Test("consistent hashing: a message from the very node the name hashes to is claimed here")
    func hashedNodeSentItBack() {
        var fromC = Self.decision(hops: 1, placement: .consistentHash)
        fromC.sender = Self.c
        #expect(
            Self.steps(fromC, answers: [.hashedNode: Self.placedAtC]) == [.lookUp(.cachedLocation), .lookUp(.hashedNode), .activateHere])
        var fromB = Self.decision(hops: 1, placement: .consistentHash)
        fromB.sender = Self.b
        #expect(
            Self.steps(fromB, answers: [.hashedNode: Self.placedAtC]) == [.lookUp(.cachedLocation), .lookUp(.hashedNode), Self.forwardToC],
            "from another node, the hash decides")
        var left = fromC
        left.hasLeft = true
        #expect(Self.steps(left, answers: [.hashedNode: Self.placedAtC]).last == Self.forwardToC, "a node that left claims nothing")
    }

    @Test("a stopping node refuses, even with the activation here")
    func stoppingRefuses() {
        #expect(Self.steps(Self.decision(accepting: false)) == [.refuse(.shuttingDown)])
        #expect(Self.steps(Self.decision(accepting: false, local: true)) == [.refuse(.shuttingDown)])
    }

    @Test("the activation here takes it, before any lookup, whatever the placement or the node's state")
    func localActivationFirst() {
        #expect(Self.steps(Self.decision(local: true)) == [.useLocal])
        #expect(Self.steps(Self.decision(local: true, placement: .consistentHash)) == [.useLocal])
        #expect(Self.steps(Self.decision(local: true, drained: true, hasLeft: true, placement: .pinned(label: "gpu"))) == [.useLocal])
    }

    @Test("a single node activates here without lookups, drained or not")
    func singleNodeActivates() {
        #expect(Self.steps(Self.decision(clustered: false, placement: .consistentHash)) == [.activateHere])
        #expect(Self.steps(Self.decision(clustered: false, drained: true)) == [.activateHere])
    }

    @Test("a message sent here by the believed owner claims here, without lookups; not on a node that left")
    func claimHere() {
        #expect(Self.steps(Self.decision(claimHere: true, placement: .consistentHash)) == [.activateHere])
        #expect(Self.steps(Self.decision(claimHere: true, drained: true, placement: .pinned(label: "gpu"))) == [.activateHere])
        let left = Self.decision(claimHere: true, drained: true, hasLeft: true)
        #expect(Self.steps(left) == [.lookUp(.cachedLocation), .lookUp(.otherNode), .refuse(.leftCluster)])
        #expect(Self.steps(left, answers: [.cachedLocation: Self.cachedAtB]) == [.lookUp(.cachedLocation), Self.forwardToB])
    }

    @Test("a cached location is followed with its generation, before any placement")
    func cachedLocation() {
        for placement in [Node.Placement.firstReceiver, .consistentHash, .leastLoaded, .pinned(label: "gpu")] {
            let steps = Self.steps(Self.decision(placement: placement), answers: [.cachedLocation: Self.cachedAtB])
            #expect(steps == [.lookUp(.cachedLocation), Self.forwardToB], "\(placement)")
        }
        let drained = Self.steps(Self.decision(drained: true), answers: [.cachedLocation: Self.cachedAtB])
        #expect(drained == [.lookUp(.cachedLocation), Self.forwardToB])
    }

    @Test("a cached owner the membership counts dead is not followed: the name is placed as if nothing were cached")
    func cachedOwnerDead() {
        let dead: RoutingDecision.Answer = .dead(Self.b)
        #expect(Self.steps(Self.decision(), answers: [.cachedLocation: dead]) == [.lookUp(.cachedLocation), .activateHere])
        let hashed = Self.steps(Self.decision(placement: .consistentHash), answers: [.cachedLocation: dead, .hashedNode: Self.placedAtC])
        #expect(hashed == [.lookUp(.cachedLocation), .lookUp(.hashedNode), Self.forwardToC])
        let drained = Self.steps(Self.decision(drained: true), answers: [.cachedLocation: dead, .otherNode: Self.placedAtC])
        #expect(drained == [.lookUp(.cachedLocation), .lookUp(.otherNode), Self.forwardToC])
    }

    @Test("first receiver: activates here when the cache knows nothing")
    func firstReceiver() {
        #expect(Self.steps(Self.decision()) == [.lookUp(.cachedLocation), .activateHere])
    }

    @Test("consistent hash: to the node the name hashes to, not remembered; here when that is this node")
    func consistentHash() {
        let decision = Self.decision(placement: .consistentHash)
        #expect(
            Self.steps(decision, answers: [.hashedNode: Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.hashedNode), Self.forwardToC,
            ])
        #expect(Self.steps(decision) == [.lookUp(.cachedLocation), .lookUp(.hashedNode), .activateHere])
    }

    @Test("least loaded: the first hop asks, a forwarded message claims here")
    func leastLoaded() {
        let first = Self.decision(placement: .leastLoaded)
        #expect(
            Self.steps(first, answers: [.lessLoadedNode: Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.lessLoadedNode), Self.forwardToC,
            ])
        #expect(Self.steps(first) == [.lookUp(.cachedLocation), .lookUp(.lessLoadedNode), .activateHere])
        let forwarded = Self.decision(hops: 1, placement: .leastLoaded)
        #expect(Self.steps(forwarded, answers: [.lessLoadedNode: Self.placedAtC]) == [.lookUp(.cachedLocation), .activateHere])
    }

    @Test("pinned: here on a labelled node; otherwise to a labelled node, or refused when none")
    func pinned() {
        let labelled = Self.decision(placement: .pinned(label: "gpu"), labels: ["zone-a", "gpu"])
        #expect(Self.steps(labelled, answers: [.labelledNode("gpu"): Self.placedAtC]) == [.lookUp(.cachedLocation), .activateHere])
        let unlabelled = Self.decision(placement: .pinned(label: "gpu"), labels: ["zone-a"])
        #expect(
            Self.steps(unlabelled, answers: [.labelledNode("gpu"): Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.labelledNode("gpu")), Self.forwardToC,
            ])
        #expect(
            Self.steps(unlabelled) == [.lookUp(.cachedLocation), .lookUp(.labelledNode("gpu")), .refuse(.noEligibleNode(label: "gpu"))])
    }

    @Test("draining: new names go to another node (pinned ones to a labelled one, never elsewhere); here when there is none")
    func draining() {
        for placement in [Node.Placement.firstReceiver, .leastLoaded] {
            let decision = Self.decision(drained: true, placement: placement)
            #expect(
                Self.steps(decision, answers: [.otherNode: Self.placedAtC]) == [
                    .lookUp(.cachedLocation), .lookUp(.otherNode), Self.forwardToC,
                ], "\(placement)")
            #expect(Self.steps(decision) == [.lookUp(.cachedLocation), .lookUp(.otherNode), .activateHere], "\(placement)")
        }
        let hashed = Self.decision(drained: true, placement: .consistentHash)
        #expect(
            Self.steps(hashed, answers: [.otherNode: Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.hashedNode), .lookUp(.otherNode), Self.forwardToC,
            ])
        let pinned = Self.decision(drained: true, placement: .pinned(label: "gpu"), labels: ["gpu"])
        #expect(
            Self.steps(pinned, answers: [.labelledNode("gpu"): Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.labelledNode("gpu")), Self.forwardToC,
            ])
        #expect(
            Self.steps(pinned, answers: [.otherNode: Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.labelledNode("gpu")), .refuse(.noEligibleNode(label: "gpu")),
            ])
    }

    @Test("a node that left forwards what it can and refuses the rest")
    func leftCluster() {
        let left = Self.decision(drained: true, hasLeft: true, placement: .consistentHash)
        #expect(
            Self.steps(left, answers: [.otherNode: Self.placedAtC]) == [
                .lookUp(.cachedLocation), .lookUp(.hashedNode), .lookUp(.otherNode), Self.forwardToC,
            ])
        #expect(Self.steps(left) == [.lookUp(.cachedLocation), .lookUp(.hashedNode), .lookUp(.otherNode), .refuse(.leftCluster)])
    }

    @Test("answers land where the decision reads them")
    func answersAreRecorded() {
        var decision = Self.decision()
        decision.record(Self.cachedAtB, for: .cachedLocation)
        decision.record(.nobody, for: .hashedNode)
        decision.record(Self.placedAtC, for: .otherNode)
        #expect(decision.cachedLocation == Self.cachedAtB && decision.placed == .nobody && decision.otherNode == Self.placedAtC)
        for question in [Question.lessLoadedNode, .labelledNode("gpu")] {
            decision.record(Self.placedAtC, for: question)
            #expect(decision.placed == Self.placedAtC)
            decision.placed = nil
        }
        #expect(Answer.placed(nil) == .nobody)
    }

    @Test("refusals carry the codes and messages callers always got")
    func refusalErrors() {
        let node = NodeID(rawValue: "n1")
        let actor = ActorID(namespace: "default", kind: "gpu-job", key: "j1")
        let stopping = RoutingDecision.Refusal.shuttingDown.error(node: node, actor: actor)
        #expect(stopping.code == .nodeStopped && stopping.message == "node \(node) is shutting down")
        let pinned = RoutingDecision.Refusal.noEligibleNode(label: "gpu").error(node: node, actor: actor)
        #expect(pinned.code == .noEligibleNode)
        #expect(pinned.message == "\(actor) runs only on nodes labelled 'gpu', and none is live and taking actors")
        let left = RoutingDecision.Refusal.leftCluster.error(node: node, actor: actor)
        #expect(left.code == .routingFailed && left.message == "node \(node) left the cluster; \(actor) is served by another node")
    }
}
