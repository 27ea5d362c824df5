@testable import DNA
import Testing

@Suite("Cluster state (membership view, placement)")
struct MembershipTests {
    func record(_ id: String, port: Int, age: Int64 = 0, state: NodeState = .up) -> NodeRecord {
        NodeRecord(
            id: NodeID(rawValue: id), cluster: "c", address: "127.0.0.1:\(port)", state: state,
            heartbeatAgeMilliseconds: age, activations: 0, failureTimeoutMilliseconds: 5000)
    }

    @Test func aNodeIsReportedDeadOnceWhenItStopsHeartbeating() {
        var state = Membership()
        #expect(state.update([record("a", port: 1), record("b", port: 2)]).isEmpty)
        #expect(state.update([record("a", port: 1), record("b", port: 2, age: 6_000)]) == [NodeID(rawValue: "b")])
        #expect(state.update([record("a", port: 1), record("b", port: 2, age: 7_000)]).isEmpty)
        #expect(state.update([record("a", port: 1, state: .left), record("b", port: 2, age: 7_000)]) == [NodeID(rawValue: "a")])
        #expect(state.address(of: NodeID(rawValue: "b")) == PeerAddress(host: "127.0.0.1", port: 2))
    }

    @Test func placementIsStableAndSkipsDeadNodes() {
        var state = Membership()
        _ = state.update([record("a", port: 1), record("b", port: 2), record("c", port: 3)])
        var chosen: [String: Int] = [:]
        for index in 0..<300 {
            let actor = ActorID(namespace: "n", kind: "k", key: "key-\(index)")
            let fromA = state.placement(of: actor, this: NodeID(rawValue: "a"))?.0.rawValue ?? "a"
            let fromB = state.placement(of: actor, this: NodeID(rawValue: "b"))?.0.rawValue ?? "b"
            #expect(fromA == fromB, "every node computes the same owner")
            chosen[fromA, default: 0] += 1
        }
        #expect(chosen.count == 3)
        #expect(chosen.values.allSatisfy { $0 > 60 }, "names spread over the nodes: \(chosen)")
        // With c dead, nothing is placed on c, and names that were on a or b stay there.
        _ = state.update([record("a", port: 1), record("b", port: 2), record("c", port: 3, age: 60_000)])
        for index in 0..<300 {
            let actor = ActorID(namespace: "n", kind: "k", key: "key-\(index)")
            let owner = state.placement(of: actor, this: NodeID(rawValue: "a"))?.0.rawValue ?? "a"
            #expect(owner != "c")
        }
    }

    @Test func theLocationCacheGenerationChangesWhenALocationMayBeWrong() {
        let cache = LocationCache(capacity: 3)
        let (a, b) = (NodeID(rawValue: "a"), NodeID(rawValue: "b"))
        func actor(_ key: String) -> ActorID { ActorID(namespace: "n", kind: "k", key: key) }
        var generation = cache.generation
        func changed() -> Bool {
            defer { generation = cache.generation }
            return cache.generation != generation
        }
        cache.record(a, for: actor("1"))
        #expect(!changed(), "a first location invalidates nothing")
        cache.record(a, for: actor("1"))
        #expect(!changed())
        cache.record(b, for: actor("1"))
        #expect(changed(), "a new owner for a name")
        cache.forget(actor("1"), ifAt: a)
        #expect(!changed(), "not there any more: nothing forgotten")
        #expect(cache.owner(of: actor("1")) == b)
        cache.forget(actor("1"), ifAt: b)
        #expect(changed())
        #expect(cache.owner(of: actor("1")) == nil)
        cache.record(a, for: actor("2"))
        cache.record(b, for: actor("3"))
        cache.forget(owners: [a])
        #expect(changed(), "a node's locations dropped")
        #expect(cache.owner(of: actor("2")) == nil && cache.owner(of: actor("3")) == b)
        cache.forget(owners: [a])
        #expect(!changed())
        cache.record(a, for: actor("4"))
        cache.record(a, for: actor("5"))
        #expect(!changed())
        cache.record(a, for: actor("6"))
        #expect(changed(), "over capacity: the cache starts afresh")
        #expect(cache.count == 1)
    }
}
