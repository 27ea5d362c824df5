@testable import DNA
import DNAStore
import Testing

@Suite("Node state machine (life, lease, membership, rebalancing timing in one)")
struct NodeStateMachineTests {
    typealias Machine = NodeStateMachine<Int, Int>
    let this = NodeID(rawValue: "this")

    func machine(rebalancing: Bool = true) -> Machine {
        var machine = Machine(
            this: this, failureTimeout: .seconds(5),
            rebalance: RebalanceTiming(enabled: rebalancing, interval: .seconds(60), heartbeatInterval: .seconds(1)))
        let began = machine.life.begin()
        #expect(began)
        _ = machine.life.started(address: "127.0.0.1:1")
        return machine
    }

    func record(
        _ id: String, port: Int, age: Int64 = 0, state: NodeState = .up, rebalanceRequested: Bool = false, stamp: Int64 = 1
    ) -> NodeRecord {
        NodeRecord(
            id: NodeID(rawValue: id), cluster: "c", address: "127.0.0.1:\(port)", state: state, heartbeatAgeMilliseconds: age,
            activations: 0, failureTimeoutMilliseconds: 5000, rebalanceRequested: rebalanceRequested, heartbeatStamp: stamp)
    }

    func at(_ seconds: Int64) -> DNAInstant { DNAInstant(nanoseconds: seconds * 1_000_000_000) }

    @Test func oneReadChangesTheViewTheEventsTheWatchAndTheRebalancingTimingTogether() {
        var machine = machine()
        var read = machine.membersRead([record("this", port: 1), record("b", port: 2)], at: at(1))
        #expect(read.events == [.nodeJoined(this, address: "127.0.0.1:1"), .nodeJoined(NodeID(rawValue: "b"), address: "127.0.0.1:2")])
        #expect(read.died.isEmpty && read.silent.isEmpty && !read.drain)
        #expect(machine.members.address(of: NodeID(rawValue: "b")) == PeerAddress(host: "127.0.0.1", port: 2))
        #expect(machine.silence.watch(of: NodeID(rawValue: "b"))?.unchangedSince == at(1))
        // Another node joined: a round at the next tick, without waiting for the interval.
        #expect(machine.rebalanceTick(.seconds(1)) == .round)

        // b goes silent by the store's clock; c left on purpose. Only b's calls fail.
        read = machine.membersRead(
            [record("this", port: 1), record("b", port: 2, age: 6_000), record("c", port: 3, age: 6_000, state: .left)], at: at(2))
        #expect(read.died == [NodeID(rawValue: "b"), NodeID(rawValue: "c")])
        #expect(read.silent == [NodeID(rawValue: "b")])
        #expect(read.events == [.nodeDeclaredDead(NodeID(rawValue: "b"))], "c was never seen alive: no event")
        #expect(machine.members.isDead(NodeID(rawValue: "b")))
        // Seen again unchanged: nothing new.
        read = machine.membersRead(
            [record("this", port: 1), record("b", port: 2, age: 7_000), record("c", port: 3, age: 7_000, state: .left)], at: at(3))
        #expect(read == Machine.MembersRead(died: [], silent: [NodeID(rawValue: "b")], events: [], drain: false))
        #expect(machine.silence.watch(of: NodeID(rawValue: "b"))?.unchangedSince == at(1), "its mark has not changed since 1 s")
    }

    @Test func aDrainAskedThroughTheStoreIsTakenOnceAndOnlyWhileServing() {
        var machine = machine()
        let asked = [record("this", port: 1, state: .draining)]
        #expect(machine.membersRead(asked, at: at(1)).drain)
        #expect(!machine.membersRead(asked, at: at(2)).drain, "once")
        var stopping = self.machine()
        stopping.life.beginStopping()
        #expect(!stopping.membersRead(asked, at: at(1)).drain, "not while stopping")
    }

    @Test func aRoundAskedThroughTheStoreComesAtTheNextTickEvenWithRebalancingOff() {
        var machine = machine(rebalancing: false)
        _ = machine.membersRead([record("this", port: 1), record("b", port: 2)], at: at(1))
        #expect(machine.rebalanceTick(.seconds(1)) == .wait, "a join alone makes no round when rebalancing is off")
        _ = machine.membersRead([record("this", port: 1, rebalanceRequested: true), record("b", port: 2)], at: at(2))
        #expect(machine.rebalanceTick(.seconds(1)) == .askedRound)
        #expect(machine.rebalanceRoundBegins(at: at(3)) == 1)
        machine.rebalanceRoundMade(moved: nil)
        #expect(machine.rebalanceTick(.seconds(1)) == .wait)
        #expect(machine.rebalanceRoundBegins(at: at(4)) == 2)
        #expect(machine.lastRebalanceRound == at(4))
    }

    @Test func thisNodesOwnChangeIsAnEventOnceBeforeTheStoreShowsIt() {
        var machine = machine()
        #expect(machine.selfChanged(to: .draining, .nodeDraining(this)) == .nodeDraining(this))
        #expect(machine.selfChanged(to: .draining, .nodeDraining(this)) == nil)
        // A read from before the store had it (still up) makes no event and forgets nothing;
        // the store then shows it draining: no second event.
        #expect(machine.membersRead([record("this", port: 1)], at: at(1)).events.isEmpty)
        #expect(machine.membersRead([record("this", port: 1, state: .draining)], at: at(2)).events.isEmpty)
        #expect(machine.membersRead([record("this", port: 1, state: .draining)], at: at(3)).events.isEmpty)
    }

    @Test func theLeaseServesUntilFourFifthsOfTheFailureTimeoutAfterTheHeartbeatWasSent() {
        var machine = machine()
        let heartbeat = machine.heartbeatSent(at: at(10))
        machine.heartbeatSucceeded(heartbeat, at: at(11))
        #expect(machine.lease.holds(at: at(13)))
        #expect(!machine.lease.holds(at: at(14)), "10 s + 4 s")
    }
}
