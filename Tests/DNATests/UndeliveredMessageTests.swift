@testable import DNA
import DNAStore
import Testing

/// Messages an activation queued but never handled when it stopped go on to wherever the
/// name is; what cannot is failed or counted, never dropped silently (defect 5 of issue 18).
@Suite("Messages an activation never handled")
struct UndeliveredMessageTests {
    @Test(.timeLimit(.minutes(1))) func castsQueuedWhenTheLeaseRanOutGoOnToTheNextActivation() async throws {
        guard let cluster = try await TestCluster.start(.sqlite, count: 1) else { return }
        let node = cluster.nodes[0]
        let gate = Gate()
        TestHooks.holdActivation(of: "undelivered", until: gate)
        let ref = try node.ref(Recorder.self, key: "undelivered")
        // The activation claims the name under the node's lease, then waits in its
        // initialiser while the casts queue.
        for index in 0..<5 { try ref.cast(Recorder.Put(key: "k\(index)", value: "v\(index)")) }
        // The lease runs out and comes back as a new one: the waiting activation may not
        // serve under the old one and stops with its queue.
        cluster.stores[0].failHeartbeats(true)
        #expect(try await eventually { !node.holdsLease }, "the lease never ran out")
        cluster.stores[0].failHeartbeats(false)
        #expect(try await eventually { node.holdsLease }, "the lease never came back")
        gate.open()
        // Handled by the next activation of the name, in order.
        let (values, _) = try await retrying {
            try await (0..<5).asyncMap { try await ref.call(Recorder.Get(key: "k\($0)")) }
        }
        #expect(values == (0..<5).map { "v\($0)" }, "casts the stopped activation never handled were dropped")
        #expect(try await ref.call(Recorder.Activations()) == 2, "the first activation stopped without handling them")
        await cluster.shutdown()
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
