import DNA
import DNATesting
import Foundation
import DNATestSupport
import Testing

/// A node does no I/O until it runs; calls wait for it; a cancelled call stops waiting.
@Suite("Node life-cycle", .integration, .serialized)
struct LifecycleTests {
    @Test("making a node does no I/O; run() opens the store and its failure reaches waiting callers")
    func noIOInTheInitialiser() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/missing-directory/dna.db"
        var configuration = Node.Configuration(store: .sqlite(path: path))
        configuration.namespace = "test"
        let node = try Node(configuration: configuration, actors: [Recorder.self])
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + "-lock"))
        let ref = try node.ref(Recorder.self, key: "early")
        let early = Task { try await ref.call(Recorder.Put(key: "k", value: "v")) }
        await #expect(throws: StoreError.self) { try await node.run() }
        let error = await #expect(throws: DNAError.self) { try await early.value }
        #expect(error?.code == .activationFailed, "the call fails with the start-up error underneath")
        #expect((error?.underlying as? StoreError) != nil)
    }

    @Test("a listener that cannot bind fails run(), not the initialiser")
    func bindFailureIsARunFailure() async throws {
        let directory = try TemporaryDirectory()
        var first = Node.Configuration(store: .sqlite(path: directory.databasePath))
        first.cluster = Node.Cluster(
            name: "local", listen: PeerAddress(host: "127.0.0.1", port: 0), secret: Array("a-test-cluster-secret-of-32-bytes".utf8))
        let holder = try await Node.started(configuration: first, actors: [Recorder.self])
        let port = try PeerAddress(parsing: holder.advertisedAddress).port
        var second = first
        second.cluster?.listen = PeerAddress(host: "127.0.0.1", port: port)
        let node = try Node(configuration: second, actors: [Recorder.self])
        await #expect(throws: (any Error).self) { try await node.run() }
        await holder.shutdown()
    }

    @Test("calls made before the node runs wait for it")
    func callsWaitForTheNode() async throws {
        var configuration = Node.Configuration(store: .custom(InMemoryStore()))
        configuration.namespace = "test"
        let node = try Node(configuration: configuration, actors: [Recorder.self])
        let ref = try node.ref(Recorder.self, key: "waits")
        let early = Task { try await ref.call(Recorder.Put(key: "k", value: "v")) }
        try await node.withRunning { node in
            try await early.value
            #expect(try await node.ref(Recorder.self, key: "waits").call(Recorder.Get(key: "k")) == "v")
        }
        await #expect(throws: DNAError.self) { try await ref.call(Recorder.Get(key: "k")) }
    }

    @Test("a node shut down before it ran fails its waiting callers")
    func shutdownBeforeRun() async throws {
        var configuration = Node.Configuration(store: .custom(InMemoryStore()))
        configuration.namespace = "test"
        let node = try Node(configuration: configuration, actors: [Recorder.self])
        let ref = try node.ref(Recorder.self, key: "never")
        let early = Task { try await ref.call(Recorder.Put(key: "k", value: "v")) }
        await node.shutdown()
        await #expect(throws: (any Error).self) { try await early.value }
        await #expect(throws: DNAError.self) { try await node.run() }
    }

    @Test("a cancelled call returns at once with CancellationError; the actor goes on")
    func cancelledCall() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let gate = Gate()
        TestHooks.holdActivation(of: "slow", until: gate)
        let ref = try node.ref(Recorder.self, key: "slow")
        let call = Task { try await ref.call(Recorder.Put(key: "k", value: "v")) }
        call.cancel()
        await #expect(throws: CancellationError.self) { try await call.value }
        gate.open()
        // Whether it was sent before the cancel or not, the actor goes on serving.
        let value = try await ref.call(Recorder.Get(key: "k"))
        #expect(value == "v" || value == nil)
        // Cancelled before it was sent: nothing is sent.
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ref.call(Recorder.Put(key: "never", value: "x"))
        }
        await #expect(throws: CancellationError.self) { try await cancelledFirst.value }
        #expect(try await ref.call(Recorder.Get(key: "never")) == nil)
        await node.shutdown()
    }
}
