import DNA
import Foundation
import Synchronization
import Testing
import DNATesting

/// A one-shot gate: `wait()` suspends until `open()`.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Test-controlled hooks the test actors look up by their key.
enum TestHooks {
    private static let gates = Mutex<[String: Gate]>([:])
    private static let events = Mutex<[String: AsyncStream<String>.Continuation]>([:])

    /// The initialiser of the actor with this key waits on `gate`.
    static func holdActivation(of key: String, until gate: Gate) { gates.withLock { $0[key] = gate } }
    static func activationGate(for key: String) -> Gate? { gates.withLock { $0[key] } }

    /// A stream of the events the actor with this key reports.
    static func events(of key: String) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        events.withLock { $0[key] = continuation }
        return stream
    }

    static func report(_ event: String, from key: String) {
        _ = events.withLock { $0[key] }?.yield(event)
    }
}

struct TestFailure: Error, Equatable {
    var reason: String
}

/// A value whose encoding always fails.
struct Unencodable: Codable, Sendable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {
        throw EncodingError.invalidValue(0, .init(codingPath: [], debugDescription: "refuses to be encoded"))
    }
}

/// A fresh directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("dna-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    var databasePath: String { path + "/dna.db" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func makeNode(
    _ store: Node.StoreChoice, maxBatch: Int = 256, idleTimeout: Duration = .seconds(300),
    commitTimeout: Duration = .seconds(10), actors: [any DurableActor.Type] = [Recorder.self],
    clock: any DNAClock = SystemClock()
) async throws -> Node {
    var configuration = Node.Configuration(store: store)
    configuration.clock = clock
    configuration.maxBatch = maxBatch
    configuration.idleTimeout = idleTimeout
    configuration.commitTimeout = commitTimeout
    configuration.namespace = "test"
    return try await Node.started(configuration: configuration, actors: actors)
}

/// A store that can hold commits back (to observe the output gate) and counts them.
final class GatedStore: StoreWrapper {
    let wrapped: any ActorStore
    private struct State {
        var holding = false
        var held: [(CommitBatch, @Sendable (Result<Void, StoreError>) -> Void)] = []
        var heldWaiters: [CheckedContinuation<Void, Never>] = []
        var committed: [Int] = []  // counts of the actor's own writes in committed batches
        var failedCommits = 0
        var failureWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        var orders: [ActorID: [UInt8]] = [:]  // each actor's latest order state committed
        var heartbeatsFail = false
        var appendAnswersToLose = 0
        var refuseAppendsAfterLoss = false
    }
    private let state = Mutex(State())

    init(_ wrapped: any ActorStore) { self.wrapped = wrapped }

    func hold() { state.withLock { $0.holding = true } }

    /// While set, heartbeats fail as if the database were unreachable from this node.
    func failHeartbeats(_ fail: Bool) { state.withLock { $0.heartbeatsFail = fail } }

    /// The next `count` appends are stored, but their callers get `outcomeUnknown`.
    /// The next `count` appends are stored, but their callers get `outcomeUnknown`; with
    /// `thenRefuse`, every append after those is refused (`unavailable`, nothing stored).
    func loseAppendAnswers(_ count: Int, thenRefuse: Bool = false) {
        state.withLock {
            $0.appendAnswersToLose = count
            $0.refuseAppendsAfterLoss = thenRefuse
        }
    }

    /// Lets every held commit through and stops holding.
    func release() {
        let held = state.withLock { state in
            state.holding = false
            defer { state.held = [] }
            return state.held
        }
        for (batch, completion) in held { forward(batch, completion) }
    }

    /// Waits until at least one commit is held.
    func waitForHeldCommit() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if !state.held.isEmpty { return true }
                state.heldWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    var committedBatchSizes: [Int] { state.withLock { $0.committed } }

    /// Waits until the store has refused `count` commits in all.
    func waitForFailedCommits(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let reached = state.withLock { state in
                if state.failedCommits >= count { return true }
                state.failureWaiters.append((count, continuation))
                return false
            }
            if reached { continuation.resume() }
        }
    }

    /// The order state (``CommitBatch/order``) last committed for `actor`.
    func committedOrder(of actor: ActorID) -> [UInt8]? { state.withLock { $0.orders[actor] } }

    private func forward(_ batch: CommitBatch, _ completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        wrapped.commit(batch) { [self] result in
            let writes = batch.operations.filter { !$0.module.hasPrefix("dna.") }.count
            if case .failure = result {
                let due = state.withLock { state in
                    state.failedCommits += 1
                    let failed = state.failedCommits
                    defer { state.failureWaiters.removeAll { $0.count <= failed } }
                    return state.failureWaiters.filter { $0.count <= failed }.map(\.continuation)
                }
                for waiter in due { waiter.resume() }
            }
            if case .success = result {
                state.withLock { state in
                    state.committed.append(writes)
                    if let order = batch.order { state.orders[batch.registration.actor] = order }
                }
            }
            completion(result)
        }
    }

    func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        let waiters: [CheckedContinuation<Void, Never>]? = state.withLock { state in
            guard state.holding else { return nil }
            state.held.append((batch, completion))
            defer { state.heldWaiters = [] }
            return state.heldWaiters
        }
        if let waiters {
            for waiter in waiters { waiter.resume() }
        } else {
            forward(batch, completion)
        }
    }

    func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError) {
        if self.state.withLock({ $0.heartbeatsFail }) { throw StoreError(.unavailable, "heartbeats blocked by the test") }
        try await wrapped.heartbeat(node: node, state: state, activations: activations)
    }
    func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        if state.withLock({ $0.refuseAppendsAfterLoss && $0.appendAnswersToLose == 0 }) {
            throw StoreError(.unavailable, "the store is unreachable (test)")
        }
        let positions = try await wrapped.append(records, to: stream, producer: producer)
        let lose = state.withLock { state in
            defer { state.appendAnswersToLose = max(0, state.appendAnswersToLose - 1) }
            return state.appendAnswersToLose > 0
        }
        if lose { throw StoreError(.outcomeUnknown, "the answer was lost (test)") }
        return positions
    }
}

/// A value shared between a test and the tasks it starts.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { value in body(&value) }
    }
}
