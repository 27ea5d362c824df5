import DNAPostgres
import DNAStore
import Foundation
import Synchronization
import DNATesting
import DNATestSupport
import Testing

/// The engines under test: every contract test runs on each.
enum Engine: String, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case inMemory
    case postgres

    /// Every engine that can run here: PostgreSQL only where its binaries (or
    /// `DNA_POSTGRES_URL`) are, else it is skipped with a loud message.
    static var allCases: [Engine] {
        TestPostgres.isAvailable ? [.sqlite, .inMemory, .postgres] : [.sqlite, .inMemory]
    }

    var testDescription: String { rawValue }

    func make() async throws -> (store: any ActorStore, cleanup: () -> Void) {
        switch self {
        case .postgres:
            let url = try #require(try await TestPostgres.freshDatabase())
            return (try await PostgresStoreTests().openStore(url: url), {})
        case .inMemory:
            return (InMemoryStore(), {})
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dna-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var configuration = SQLiteStore.Configuration(path: directory.appendingPathComponent("test.db").path)
            configuration.sharing = .shared
            return (try await SQLiteStore.opened(configuration), { try? FileManager.default.removeItem(at: directory) })
        }
    }
}

func granted(_ outcome: ActivationOutcome) throws -> (Registration, [ModuleRow]) {
    guard case .granted(let registration, let rows) = outcome else {
        Issue.record("expected a grant, got \(outcome)")
        throw StoreError(.invalidArgument, "not granted")
    }
    return (registration, rows)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite("Store contract (SQLite, in-memory and PostgreSQL)", .integration, .serialized)
struct StoreContractTests {
    let actor = ActorID(namespace: "test", kind: "kv", key: "a")
    let nodeA = NodeID(rawValue: "node-a")
    let nodeB = NodeID(rawValue: "node-b")

    func request(_ node: NodeID) -> ActivationRequest {
        ActivationRequest(actor: actor, node: node)
    }

    func setUp(_ engine: Engine) async throws -> (any ActorStore, () -> Void) {
        let (store, cleanup) = try await engine.make()
        for node in [nodeA, nodeB] {
            try await store.join(node: node, cluster: "c", address: node.rawValue, failureTimeout: .seconds(5), labels: [])
            try await store.heartbeat(node: node, state: .up, activations: 0)
        }
        return (store, cleanup)
    }

    /// Every heartbeat changes the node's mark, also within one millisecond; a name whose
    /// owner is dead by the store's clock goes to a claimant only with the owner's current
    /// mark (the claimant watched it unchanged: `SilenceWatch`), checked in the claim.
    @Test(arguments: Engine.allCases)
    func aTakeoverNeedsTheOwnersCurrentHeartbeatMark(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        let owner = NodeID(rawValue: "short-lived")
        try await store.join(node: owner, cluster: "c", address: "o", failureTimeout: .milliseconds(200), labels: [])
        try await store.join(node: nodeB, cluster: "c", address: "b", failureTimeout: .seconds(5), labels: [])
        var marks: [Int64] = []
        for _ in 0..<5 {
            try await store.heartbeat(node: owner, state: .up, activations: 0)
            marks.append(try #require(try await store.nodes(cluster: "c").first { $0.id == owner }).heartbeatStamp)
        }
        #expect(Set(marks).count == marks.count, "every heartbeat changes the mark: \(marks)")
        _ = try granted(try await store.activate(ActivationRequest(actor: actor, node: owner)))
        // Silent past its failure timeout by the store's clock (no test clock reaches a database's).
        try await Task.sleep(for: .milliseconds(400))
        try await store.heartbeat(node: nodeB, state: .up, activations: 0)
        let mark = try #require(marks.last)
        for silent in [[:], [owner: mark - 1]] as [[NodeID: Int64]] {
            guard case .ownedElsewhere(owner) = try await store.activate(ActivationRequest(actor: actor, node: nodeB, silentNodes: silent))
            else {
                Issue.record("taken over without the claimant's watch of the owner's current mark (\(silent))")
                return
            }
        }
        let (taken, _) = try granted(try await store.activate(ActivationRequest(actor: actor, node: nodeB, silentNodes: [owner: mark])))
        #expect(taken.epoch == 2)
    }

    @Test(arguments: Engine.allCases)
    func claimsFollowTheRegistrationRule(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (first, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(first.epoch == 1)
        #expect(rows.isEmpty)
        guard case .ownedElsewhere(let owner) = try await store.activate(request(nodeB)) else {
            Issue.record("a live owner must keep its name")
            return
        }
        #expect(owner == nodeA)
        let (again, _) = try granted(try await store.activate(request(nodeA)))
        #expect(again.epoch == 2)
        #expect(again.rowID == first.rowID)
        try await store.release(again)
        let (taken, _) = try granted(try await store.activate(request(nodeB)))
        #expect(taken.epoch == 3)
        #expect(taken.owner == nodeB)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func deadOwnerIsTakenOverByTheStoreClock(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        // An owner with a tiny failure timeout: its last heartbeat is soon too old.
        let hasty = NodeID(rawValue: "node-hasty")
        try await store.join(node: hasty, cluster: "c", address: "h", failureTimeout: .milliseconds(10), labels: [])
        try await store.heartbeat(node: hasty, state: .up, activations: 0)
        _ = try granted(try await store.activate(request(hasty)))
        try await Task.sleep(for: .milliseconds(20))
        let (taken, _) = try granted(try await store.activate(request(nodeB)))
        #expect(taken.epoch == 2)
        await store.close()
    }

    /// The runtime's order state is kept with the name, across epochs, and handed back at
    /// each activation as one row of `ModuleRow.orderModule`; a batch without one keeps it.
    @Test(arguments: Engine.allCases)
    func theOrderStateOutlivesTheEpoch(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(rows.isEmpty)
        let put = [StorageOperation(module: "kv", key: bytes("k"), value: bytes("v"))]
        try await store.commit(CommitBatch(registration: registration, sequence: 1, operations: put, order: [1, 2, 3]))
        try await store.commit(CommitBatch(registration: registration, sequence: 2, operations: put))
        try await store.release(registration)
        let (_, again) = try granted(try await store.activate(request(nodeB)))
        #expect(
            again == [
                ModuleRow(module: "kv", key: bytes("k"), value: bytes("v")),
                ModuleRow(module: ModuleRow.orderModule, key: [], value: [1, 2, 3]),
            ])
        await store.close()
    }

    /// A wrapper implements what it changes (here: commits refused while a switch is on)
    /// and forwards the rest to the engine it wraps.
    @Test(arguments: Engine.allCases)
    func aStoreWrapperForwardsWhatItDoesNotImplement(engine: Engine) async throws {
        let (engineStore, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let store = RefusingStore(engineStore)
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        #expect(try await store.nodes(cluster: "c").map(\.id).sorted { $0.rawValue < $1.rawValue } == [nodeA, nodeB])
        let put = [StorageOperation(module: "kv", key: bytes("k"), value: bytes("v"))]
        store.refusing.withLock { $0 = true }
        await #expect(throws: StoreError.self) {
            try await store.commit(CommitBatch(registration: registration, sequence: 1, operations: put))
        }
        store.refusing.withLock { $0 = false }
        try await store.commit(CommitBatch(registration: registration, sequence: 1, operations: put))
        try await store.release(registration)
        let (_, rows) = try granted(try await engineStore.activate(request(nodeB)))
        #expect(rows == [ModuleRow(module: "kv", key: bytes("k"), value: bytes("v"))])
        await store.close()
    }

    /// Defect j: rows of nodes gone for longer than the retention are deleted; a node whose
    /// row is gone is told so at its next heartbeat and serves nothing more.
    @Test(arguments: Engine.allCases)
    func rowsOfGoneNodesAreForgotten(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let silent = NodeID(rawValue: "node-silent")
        try await store.join(node: silent, cluster: "c", address: "s", failureTimeout: .milliseconds(10), labels: [])
        let left = NodeID(rawValue: "node-left")
        try await store.join(node: left, cluster: "c", address: "l", failureTimeout: .seconds(60), labels: [])
        try await store.heartbeat(node: left, state: .left, activations: 0)
        let other = NodeID(rawValue: "node-other-cluster")
        try await store.join(node: other, cluster: "d", address: "o", failureTimeout: .milliseconds(10), labels: [])
        try await Task.sleep(for: .milliseconds(50))
        // Live nodes, and gone ones within the retention, stay.
        #expect(try await store.forgetNodes(cluster: "c", goneFor: .seconds(60)) == 0)
        #expect(try await store.forgetNodes(cluster: "c", goneFor: .milliseconds(20)) == 2)
        #expect(Set(try await store.nodes(cluster: "c").map(\.id)) == [nodeA, nodeB])
        #expect(try await store.nodes(cluster: "d").map(\.id) == [other], "other clusters are left alone")
        let error = await #expect(throws: StoreError.self) { try await store.heartbeat(node: silent, state: .up, activations: 0) }
        #expect(error?.code == .fenced)
        await store.close()
    }

    /// Defect h: a node is judged by the failure timeout it recorded, not by the claimant's.
    @Test(arguments: Engine.allCases)
    func anOwnerIsJudgedByItsOwnFailureTimeout(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let patient = NodeID(rawValue: "node-patient")
        try await store.join(node: patient, cluster: "c", address: "p", failureTimeout: .seconds(60), labels: [])
        try await store.heartbeat(node: patient, state: .up, activations: 0)
        let hasty = NodeID(rawValue: "node-hasty")
        try await store.join(node: hasty, cluster: "c", address: "h", failureTimeout: .milliseconds(10), labels: [])
        try await store.heartbeat(node: hasty, state: .up, activations: 0)
        _ = try granted(try await store.activate(request(patient)))
        try await Task.sleep(for: .milliseconds(30))
        // Silent for longer than the claimant's own timeout, not for longer than its own:
        // the patient owner keeps its name (it serves for up to 48 s more under its lease).
        guard case .ownedElsewhere(let owner) = try await store.activate(request(hasty)) else {
            Issue.record("the owner's name was taken before its own failure timeout")
            return
        }
        #expect(owner == patient)
        let records = try await store.nodes(cluster: "c")
        #expect(records.first { $0.id == patient }?.failureTimeoutMilliseconds == 60_000)
        #expect(records.first { $0.id == patient }?.isAlive == true)
        #expect(records.first { $0.id == hasty }?.isAlive == false)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func commitIsAtomicOrderedAndReadBackSorted(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        try await store.commit(
            CommitBatch(
                registration: registration, sequence: 1,
                operations: [
                    StorageOperation(module: "kv", key: bytes("b"), value: bytes("1")),
                    StorageOperation(module: "kv", key: bytes("a"), value: bytes("1")),
                    StorageOperation(module: "kv", key: bytes("a"), value: bytes("2")),  // last write wins
                    StorageOperation(module: "kv", key: bytes("gone"), value: bytes("x")),
                    StorageOperation(module: "kv", key: bytes("gone"), value: nil),  // write then delete
                    StorageOperation(module: "state", key: [], value: bytes("{}")),
                ]))
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(
            rows == [
                ModuleRow(module: "kv", key: bytes("a"), value: bytes("2")),
                ModuleRow(module: "kv", key: bytes("b"), value: bytes("1")),
                ModuleRow(module: "state", key: [], value: bytes("{}")),
            ])
        await store.close()
    }

    @Test(.timeLimit(.minutes(1)), arguments: Engine.allCases)
    func batchesHandedOverTogetherApplyInOrderAndAreReadBack(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        let other = ActorID(namespace: "test", kind: "kv", key: "b")
        guard
            case .granted(let otherRegistration, _) = try await store.activate(
                ActivationRequest(actor: other, node: nodeA))
        else { Issue.record("not granted"); return }
        // Handed over without waiting, so the SQLite worker takes them in one transaction,
        // with the activation behind them.
        let results = Mutex<[Result<Void, StoreError>]>([])
        let (answered, allAnswered) = AsyncStream<Void>.makeStream()
        func put(_ registration: Registration, _ sequence: Int64, _ pairs: [(String, String?)]) {
            store.commit(
                CommitBatch(
                    registration: registration, sequence: sequence,
                    operations: pairs.map { StorageOperation(module: "kv", key: bytes($0.0), value: $0.1.map(bytes)) })
            ) { result in
                // A store may run a completion after a later read has seen its batch.
                if results.withLock({
                    $0.append(result); return $0.count
                }) == 3 {
                    allAnswered.finish()
                }
            }
        }
        put(registration, 1, [("z", "1"), ("k", "1"), ("gone", "1")])
        put(otherRegistration, 1, [("k", "other")])
        put(registration, 2, [("k", "2"), ("a", "2"), ("gone", nil)])
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(
            rows == [
                ModuleRow(module: "kv", key: bytes("a"), value: bytes("2")),
                ModuleRow(module: "kv", key: bytes("k"), value: bytes("2")),
                ModuleRow(module: "kv", key: bytes("z"), value: bytes("1")),
            ])
        for await _ in answered {}
        #expect(results.withLock { $0.count } == 3)
        #expect(results.withLock { $0.allSatisfy { if case .success = $0 { true } else { false } } })
        await store.close()
    }

    /// Enough writes, with repeated keys and deletes mixed in, that a store grouping rows
    /// into multi-row statements meets every statement size and same-key rows within one.
    @Test(arguments: Engine.allCases)
    func manyWritesWithRepeatsAndDeletesLeaveTheLastOfEach(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        var expected: [String: String] = [:]
        var random: UInt64 = 42
        let results = Mutex<[Result<Void, StoreError>]>([])
        for sequence in Int64(1)...4 {
            var operations: [StorageOperation] = []
            for index in 0..<700 {
                random = random &* 6364136223846793005 &+ 1442695040888963407
                // The last batch has no deletes and few keys: long runs of upserts, with
                // each key several times in one 64-row statement.
                let key = sequence == 4 ? "r\((random >> 33) % 60)" : "k\((random >> 33) % 300)"
                // About one write in eight is a delete.
                let value: String? = sequence < 4 && (random >> 20) % 8 == 0 ? nil : "\(sequence)-\(index)"
                expected[key] = value
                operations.append(StorageOperation(module: "kv", key: bytes(key), value: value.map(bytes)))
            }
            store.commit(CommitBatch(registration: registration, sequence: sequence, operations: operations)) { result in
                results.withLock { $0.append(result) }
            }
        }
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        let stored = Dictionary(
            uniqueKeysWithValues: rows.map { (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) })
        let wanted = expected.compactMapValues { $0 }
        let wrong = Set(stored.keys).union(wanted.keys).filter { stored[$0] != wanted[$0] }.sorted()
        #expect(wrong.isEmpty, "keys with the wrong value or presence: \(wrong.prefix(10))")
        #expect(stored.count == wanted.count)
        #expect(rows.map(\.key) == rows.map(\.key).sorted { $0.lexicographicallyPrecedes($1) })
        #expect(results.withLock { $0.count == 4 && $0.allSatisfy { if case .success = $0 { true } else { false } } })
        await store.close()
    }

    /// A run of large values (which the SQLite engine writes 64 to a statement, then lets
    /// go of: `SQLiteWriterTests`) is stored whole.
    @Test(arguments: Engine.allCases)
    func aRunOfLargeValuesIsStoredWhole(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        let operations = (0..<70).map { index in
            StorageOperation(module: "kv", key: bytes("k\(1000 + index)"), value: [UInt8](repeating: UInt8(index), count: 80_000))
        }
        try await store.commit(CommitBatch(registration: registration, sequence: 1, operations: operations))
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(rows.map(\.key) == operations.map(\.key))
        #expect(rows.map(\.value) == operations.map { $0.value! })
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func staleEpochIsFencedAndWritesNothing(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (old, _) = try granted(try await store.activate(request(nodeA)))
        let (current, _) = try granted(try await store.activate(request(nodeA)))
        let error = await #expect(throws: StoreError.self) {
            try await store.commit(
                CommitBatch(
                    registration: old, sequence: 1,
                    operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("stale"))]))
        }
        #expect(error?.code == .fenced)
        #expect(error?.isRetryable == true)
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(rows.isEmpty)
        _ = current
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func aNameHandedOverGoesToItsTargetWithItsDataAndFencesTheOldOwner(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (old, _) = try granted(try await store.activate(request(nodeA)))
        try await store.commit(
            CommitBatch(registration: old, sequence: 1, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("v"))]))
        try await store.handOver(old, to: nodeB, transientState: nil)
        // The old owner is fenced: neither its writes nor a second hand-over go through.
        let late = await #expect(throws: StoreError.self) {
            try await store.commit(
                CommitBatch(
                    registration: old, sequence: 2, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("late"))]))
        }
        #expect(late?.code == .fenced)
        let again = await #expect(throws: StoreError.self) { try await store.handOver(old, to: nodeA, transientState: nil) }
        #expect(again?.code == .fenced)
        // Another node finds it owned by the (live) target; the target is granted it, with the data.
        guard case .ownedElsewhere(let owner) = try await store.activate(request(nodeA)) else {
            Issue.record("the old owner claimed a name handed over")
            return
        }
        #expect(owner == nodeB)
        let (new, rows) = try granted(try await store.activate(request(nodeB)))
        #expect(new.epoch == old.epoch + 2)
        #expect(rows.contains { $0.module == "kv" && $0.key == bytes("k") && $0.value == bytes("v") })
        try await store.commit(
            CommitBatch(registration: new, sequence: 1, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("w"))]))
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func transientStateHandedOverReachesTheTargetOnce(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (old, _) = try granted(try await store.activate(request(nodeA)))
        try await store.handOver(old, to: nodeB, transientState: [1, 2, 3])
        let (new, rows) = try granted(try await store.activate(request(nodeB)))
        #expect(rows.contains { $0.module == ModuleRow.handOverModule && $0.key.isEmpty && $0.value == [1, 2, 3] })
        // The new activation deletes it with its first commit; the next one does not see it.
        try await store.commit(
            CommitBatch(
                registration: new, sequence: 1, operations: [StorageOperation(module: ModuleRow.handOverModule, key: [], value: nil)]))
        try await store.release(new)
        let (_, later) = try granted(try await store.activate(request(nodeA)))
        #expect(!later.contains { $0.module == ModuleRow.handOverModule })
        // A refused hand-over keeps nothing.
        let stale = await #expect(throws: StoreError.self) { try await store.handOver(old, to: nodeB, transientState: [9]) }
        #expect(stale?.code == .fenced)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func dueAlarmsComeEarliestFirstWithTheirLiveOwner(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let other = ActorID(namespace: "test", kind: "kv", key: "b")
        let (first, _) = try granted(try await store.activate(request(nodeA)))
        let (second, _) = try granted(try await store.activate(ActivationRequest(actor: other, node: nodeB)))
        func alarm(_ name: String, _ due: Int64) -> StorageOperation {
            StorageOperation(module: ModuleRow.alarmModule, key: bytes(name), value: AlarmRecord(due: due).encoded)
        }
        try await store.commit(CommitBatch(registration: first, sequence: 1, operations: [alarm("late", 5_000), alarm("soon", 1_000)]))
        try await store.commit(CommitBatch(registration: second, sequence: 1, operations: [alarm("mid", 3_000), alarm("far", 1 << 50)]))
        var due = try await store.dueAlarms(before: 5_000, limit: 10)
        #expect(due.map(\.name) == ["soon", "mid", "late"])
        #expect(due.map(\.owner) == [nodeA, nodeB, nodeA])
        #expect(due.first?.actor == actor && due.first?.due == 1_000)
        #expect(try await store.dueAlarms(before: 999, limit: 10).isEmpty)
        #expect(try await store.dueAlarms(before: 5_000, limit: 2).map(\.name) == ["soon", "mid"])
        // A released name has no owner; a handled alarm is gone.
        try await store.release(second)
        try await store.commit(
            CommitBatch(
                registration: first, sequence: 2,
                operations: [StorageOperation(module: ModuleRow.alarmModule, key: bytes("soon"), value: nil)]))
        due = try await store.dueAlarms(before: 5_000, limit: 10)
        #expect(due.map(\.name) == ["mid", "late"])
        #expect(due.first?.owner == nil)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func labelsAndRebalanceRequestsAreKeptPerNode(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let labelled = NodeID(rawValue: "node-l")
        try await store.join(node: labelled, cluster: "c", address: "l", failureTimeout: .seconds(5), labels: ["zone:eu-1", "gpu"])
        var rows = try await store.nodes(cluster: "c")
        #expect(rows.first { $0.id == labelled }?.labels == ["zone:eu-1", "gpu"])
        #expect(rows.first { $0.id == nodeA }?.labels == [])
        // Asked of the nodes that are up (the one still joining is not).
        #expect(try await store.requestRebalance(cluster: "c") == 2)
        #expect(try await store.requestRebalance(cluster: "other") == 0)
        rows = try await store.nodes(cluster: "c")
        #expect(rows.filter(\.rebalanceRequested).map(\.id).sorted { $0.rawValue < $1.rawValue } == [nodeA, nodeB])
        try await store.rebalanceDone(node: nodeA)
        rows = try await store.nodes(cluster: "c")
        #expect(rows.filter(\.rebalanceRequested).map(\.id) == [nodeB])
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func aNodeAskedToDrainStaysDrainingUntilItLeaves(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        try await store.requestDrain(node: nodeA)
        // Its own heartbeats, which say `up`, do not undo the request.
        try await store.heartbeat(node: nodeA, state: .up, activations: 3)
        var row = try await store.nodes(cluster: "c").first { $0.id == nodeA }
        #expect(row?.state == .draining)
        #expect(row?.activations == 3)
        let twice = await #expect(throws: StoreError.self) { try await store.requestDrain(node: nodeA) }
        #expect(twice?.code == .invalidArgument)
        try await store.heartbeat(node: nodeA, state: .left, activations: 0)
        row = try await store.nodes(cluster: "c").first { $0.id == nodeA }
        #expect(row?.state == .left)
        let unknown = await #expect(throws: StoreError.self) { try await store.requestDrain(node: NodeID(rawValue: "nobody")) }
        #expect(unknown?.code == .invalidArgument)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func batchesApplyOnlyInSequence(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        let write = [StorageOperation(module: "kv", key: bytes("k"), value: bytes("2"))]
        let error = await #expect(throws: StoreError.self) {
            try await store.commit(CommitBatch(registration: registration, sequence: 2, operations: write))
        }
        #expect(error?.code == .predecessorMissing)
        try await store.commit(
            CommitBatch(
                registration: registration, sequence: 1, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("1"))]))
        try await store.commit(CommitBatch(registration: registration, sequence: 2, operations: write))
        let (_, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(rows == [ModuleRow(module: "kv", key: bytes("k"), value: bytes("2"))])
        await store.close()
    }

    /// An attempt whose answer was lost is made again: the store says it is done and does
    /// not apply it twice (the activation tells its callers success, not an error).
    @Test(arguments: Engine.allCases)
    func aBatchAppliedAlreadyIsAnsweredWithSuccessAndNotAppliedAgain(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let (registration, _) = try granted(try await store.activate(request(nodeA)))
        let first = CommitBatch(
            registration: registration, sequence: 1, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("1"))])
        let second = CommitBatch(
            registration: registration, sequence: 2, operations: [StorageOperation(module: "kv", key: bytes("k"), value: bytes("2"))])
        try await store.commit(first)
        try await store.commit(second)
        try await store.commit(first)  // a retry of an attempt whose answer was lost
        let (again, rows) = try granted(try await store.activate(request(nodeA)))
        #expect(rows == [ModuleRow(module: "kv", key: bytes("k"), value: bytes("2"))], "the retry changed nothing")
        // Under a newer registration, the old batch is fenced: that attempt certainly did nothing.
        let error = await #expect(throws: StoreError.self) { try await store.commit(first) }
        #expect(error?.code == .fenced)
        #expect(again.epoch == registration.epoch + 1)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func ofConcurrentClaimantsExactlyOneWins(engine: Engine) async throws {
        let (store, cleanup) = try await engine.make()
        defer { cleanup() }
        let nodes = (0..<5).map { NodeID(rawValue: "n\($0)") }
        for node in nodes {
            try await store.join(node: node, cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
            try await store.heartbeat(node: node, state: .up, activations: 0)
        }
        let target = ActorID(namespace: "test", kind: "kv", key: "contended")
        let winners = try await withThrowingTaskGroup(of: Registration?.self) { group in
            for attempt in 0..<50 {
                let node = nodes[attempt % nodes.count]
                group.addTask {
                    if case .granted(let registration, _) = try await store.activate(
                        ActivationRequest(actor: target, node: node))
                    {
                        return registration
                    }
                    return nil
                }
            }
            var winners: [Registration] = []
            for try await winner in group { if let winner { winners.append(winner) } }
            return winners
        }
        // One node wins; it may be granted again (new epochs), no other node ever is.
        #expect(Set(winners.map(\.owner)).count == 1)
        #expect(Set(winners.map(\.epoch)).count == winners.count)
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func evictedNodeCannotHeartbeatAndLosesItsNames(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        _ = try granted(try await store.activate(request(nodeA)))
        try await store.evictOtherNodes(cluster: "c", keeping: nodeB)
        let error = await #expect(throws: StoreError.self) {
            try await store.heartbeat(node: nodeA, state: .up, activations: 1)
        }
        #expect(error?.code == .fenced)
        let (taken, _) = try granted(try await store.activate(request(nodeB)))
        #expect(taken.owner == nodeB)
        let nodes = try await store.nodes(cluster: "c")
        #expect(nodes.first { $0.id == nodeA }?.state == .left)
        #expect(try await store.registrations(kind: "kv", limit: 10) == [RegistrationRecord(actor: actor, owner: nodeB, epoch: 2)])
        await store.close()
    }

    @Test(arguments: Engine.allCases)
    func invalidNameIsRejected(engine: Engine) async throws {
        let (store, cleanup) = try await setUp(engine)
        defer { cleanup() }
        let error = await #expect(throws: StoreError.self) {
            _ = try await store.activate(
                ActivationRequest(actor: ActorID(namespace: "test", kind: "kv", key: ""), node: nodeA))
        }
        #expect(error?.code == .invalidName)
        await store.close()
    }
}

/// Refuses commits while `refusing` is set; everything else goes to the wrapped engine.
final class RefusingStore: StoreWrapper {
    let wrapped: any ActorStore
    let refusing = Mutex(false)

    init(_ wrapped: any ActorStore) { self.wrapped = wrapped }

    func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        if refusing.withLock({ $0 }) { return completion(.failure(StoreError(.unavailable, "refused by the test"))) }
        wrapped.commit(batch, completion: completion)
    }
}
