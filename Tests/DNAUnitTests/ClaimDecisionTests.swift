@_spi(StoreEngine) import DNAStore
import DNAStore
import Testing

@Suite("ClaimDecision (pure registration rule)")
struct ClaimDecisionTests {
    let me = NodeID(rawValue: "me")
    let other = NodeID(rawValue: "other")

    func node(_ id: NodeID, state: NodeState = .up, age: Int64) -> NodeRecord {
        NodeRecord(
            id: id, cluster: "c", address: "a", state: state, heartbeatAgeMilliseconds: age, activations: 0,
            failureTimeoutMilliseconds: 5000)
    }

    @Test func newNameIsInsertedAtEpochOne() {
        #expect(ClaimDecision.decide(current: nil, claimant: me) == .insert(epoch: 1))
    }

    @Test func releasedNameIsTakenAtNextEpoch() {
        let current = ClaimDecision.Current(owner: nil, epoch: 7, ownerNode: nil)
        #expect(ClaimDecision.decide(current: current, claimant: me) == .takeOver(epoch: 8))
    }

    @Test func ownNameIsGrantedAgainAtNextEpoch() {
        let current = ClaimDecision.Current(owner: me, epoch: 3, ownerNode: node(me, age: 0))
        #expect(ClaimDecision.decide(current: current, claimant: me) == .takeOver(epoch: 4))
    }

    @Test func liveOwnerKeepsTheName() {
        let current = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: node(other, age: 4_999))
        #expect(ClaimDecision.decide(current: current, claimant: me) == .ownedElsewhere(other))
    }

    @Test func silentOwnerLosesTheNameAfterTheFailureTimeout() {
        let current = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: node(other, age: 5_000))
        #expect(ClaimDecision.decide(current: current, claimant: me) == .takeOver(epoch: 4))
    }

    @Test func ownerThatLeftLosesTheNameAtOnce() {
        let current = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: node(other, state: .left, age: 0))
        #expect(ClaimDecision.decide(current: current, claimant: me) == .takeOver(epoch: 4))
    }

    /// The store's clock jumped: the owner's heartbeat looks old, but the claimant has not
    /// watched it silent for its failure timeout, so the owner may still serve.
    @Test func ownerDeadOnlyByTheStoresClockKeepsTheNameUntilTheClaimantWatchedItSilent() {
        var owner = node(other, age: 60_000)
        owner.heartbeatStamp = 41
        let current = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: owner)
        #expect(ClaimDecision.decide(current: current, claimant: me, silentNodes: [:]) == .ownedElsewhere(other))
        #expect(
            ClaimDecision.decide(current: current, claimant: me, silentNodes: [other: 40]) == .ownedElsewhere(other), "a heartbeat since")
        #expect(ClaimDecision.decide(current: current, claimant: me, silentNodes: [other: 41]) == .takeOver(epoch: 4))
        // Alive by the store's clock: the watch does not matter.
        let alive = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: node(other, age: 10))
        #expect(ClaimDecision.decide(current: alive, claimant: me, silentNodes: [other: 0]) == .ownedElsewhere(other))
        // An owner that left serves nothing: no watch needed.
        let left = ClaimDecision.Current(owner: other, epoch: 3, ownerNode: node(other, state: .left, age: 0))
        #expect(ClaimDecision.decide(current: left, claimant: me, silentNodes: [:]) == .takeOver(epoch: 4))
    }

    @Test func ownerWithoutNodeRowLosesTheName() {
        let current = ClaimDecision.Current(owner: other, epoch: 1, ownerNode: nil)
        #expect(ClaimDecision.decide(current: current, claimant: me) == .takeOver(epoch: 2))
    }
}

@Suite("ActorID naming rules")
struct ActorIDTests {
    @Test func validNamePasses() throws {
        try ActorID(namespace: "app", kind: "room", key: "lobby 1 ✓").validate()
    }

    @Test(arguments: [
        ActorID(namespace: "app", kind: "room", key: ""),
        ActorID(namespace: "app", kind: "room", key: String(repeating: "x", count: ActorID.maxKeyBytes + 1)),
        ActorID(namespace: "", kind: "room", key: "k"),
        ActorID(namespace: "app", kind: "", key: "k"),
        ActorID(namespace: "a b", kind: "room", key: "k"),
        ActorID(namespace: "app", kind: String(repeating: "k", count: 65), key: "k"),
        ActorID(namespace: "app", kind: "room", key: "line\nbreak"),
    ])
    func invalidNameIsRejected(id: ActorID) {
        #expect(throws: StoreError.self) { try id.validate() }
        do { try id.validate() } catch { #expect(error.code == .invalidName) }
    }

    @Test func longestKeyPasses() throws {
        try ActorID(namespace: "app", kind: "room", key: String(repeating: "x", count: ActorID.maxKeyBytes)).validate()
    }
}
