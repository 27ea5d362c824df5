@testable import DNA
import Testing

@Suite("Cluster state (membership view, placement)")
struct ClusterStateTests {
    func record(_ id: String, port: Int, age: Int64 = 0, state: NodeState = .up) -> NodeRecord {
        NodeRecord(
            id: NodeID(rawValue: id), cluster: "c", address: "127.0.0.1:\(port)", state: state,
            heartbeatAgeMilliseconds: age, activations: 0)
    }

    @Test func aNodeIsReportedDeadOnceWhenItStopsHeartbeating() {
        let state = ClusterState()
        #expect(state.update([record("a", port: 1), record("b", port: 2)], failureTimeout: .seconds(5)).isEmpty)
        #expect(state.update([record("a", port: 1), record("b", port: 2, age: 6_000)], failureTimeout: .seconds(5)) == [NodeID(rawValue: "b")])
        #expect(state.update([record("a", port: 1), record("b", port: 2, age: 7_000)], failureTimeout: .seconds(5)).isEmpty)
        #expect(state.update([record("a", port: 1, state: .left), record("b", port: 2, age: 7_000)], failureTimeout: .seconds(5)) == [NodeID(rawValue: "a")])
        #expect(state.address(of: NodeID(rawValue: "b")) == PeerAddress(host: "127.0.0.1", port: 2))
    }

    @Test func placementIsStableAndSkipsDeadNodes() {
        let state = ClusterState()
        _ = state.update([record("a", port: 1), record("b", port: 2), record("c", port: 3)], failureTimeout: .seconds(5))
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
        _ = state.update([record("a", port: 1), record("b", port: 2), record("c", port: 3, age: 60_000)], failureTimeout: .seconds(5))
        for index in 0..<300 {
            let actor = ActorID(namespace: "n", kind: "k", key: "key-\(index)")
            let owner = state.placement(of: actor, this: NodeID(rawValue: "a"))?.0.rawValue ?? "a"
            #expect(owner != "c")
        }
    }
}
