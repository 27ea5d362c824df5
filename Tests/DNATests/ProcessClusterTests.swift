@testable import DNA
import DNAExamples
import Foundation
import Synchronization
import DNATestSupport
import DNATesting
import Testing

/// Nodes as separate `dna node` processes: killed, paused and resumed for real.
@Suite("Cluster of dna node processes", .integration, .serialized, .timeLimit(.minutes(3)))
struct ProcessClusterTests {
    /// The store the processes share: a fresh PostgreSQL database if PostgreSQL exists here,
    /// else a shared SQLite file.
    private func sharedStore(_ directory: TemporaryDirectory) async throws -> String {
        if let url = try await TestPostgres.freshDatabase() { return url }
        return "sqlite:" + directory.databasePath
    }

    private func startNodes(_ count: Int, store: String) async throws -> [NodeProcess] {
        var nodes: [NodeProcess] = []
        for _ in 0..<count { nodes.append(try await NodeProcess.start(store: store)) }
        return nodes
    }

    /// A `dna node` stopped with SIGTERM records that it left before its store closes (on
    /// PostgreSQL the client's pool used to close at the first sign of the graceful shutdown,
    /// so the node could neither finish nor say it left).
    @Test func aStoppedNodeRecordsThatItLeft() async throws {
        let directory = try TemporaryDirectory()
        let location = try await TestPostgres.freshDatabase() ?? ("sqlite:" + directory.databasePath)
        let (store, stop) = try await PipelineProcessTests.open(location)
        let nodes = [try await NodeProcess.start(store: location), try await NodeProcess.start(store: location)]
        defer { for node in nodes { node.stop() } }
        nodes[0].stop()
        let record = try await store.nodes(cluster: "test").first { $0.id.rawValue == nodes[0].id }
        #expect(record?.state == .left, "\(String(describing: record))")
        await stop()
    }

    /// `dna node --sqlite-synchronous full` makes acknowledged writes survive a power loss
    /// (an fsync per commit); anything but normal or full is refused.
    @Test func aNodeTakesWhatAnAcknowledgedSQLiteWriteSurvives() async throws {
        let directory = try TemporaryDirectory()
        let store = "sqlite:" + directory.databasePath
        let node = try await NodeProcess.start(store: store, arguments: ["--sqlite-synchronous", "full"])
        defer { node.stop() }
        let client = try node.client()
        try await client.call(KVActor.Put(key: "a", value: "b"), kind: "kv", key: "synced")
        #expect(try await client.call(KVActor.Get(key: "a"), kind: "kv", key: "synced") == "b")
        await client.shutdown()
        await #expect(throws: (any Error).self) {
            try await NodeProcess.start(store: store, arguments: ["--sqlite-synchronous", "sometimes"]).stop()
        }
        // The library's choice carries the setting to the store it makes.
        let made = try Node.StoreChoice.sqlite(path: directory.databasePath, synchronous: .full).make(true)
        #expect((made.store as? SQLiteStore)?.configuration.synchronous == .full)
        #expect(
            (try Node.StoreChoice.sqlite(path: directory.databasePath).make(true).store as? SQLiteStore)?.configuration.synchronous
                == .normal)
    }

    @Test func threeProcessesGiveOneActivationToConcurrentFirstCalls() async throws {
        let directory = try TemporaryDirectory()
        let nodes = try await startNodes(3, store: try await sharedStore(directory))
        let clients = try nodes.map { try $0.client() }
        let totals = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in clients {
                for _ in 0..<100 {
                    group.addTask {
                        try await retrying { try await client.call(CounterActor.Add(amount: 1), kind: "counter", key: "first") }.value
                    }
                }
            }
            var totals: [Int] = []
            for try await total in group { totals.append(total) }
            return totals
        }
        #expect(totals.count == 300)
        #expect(Set(totals).count == 300, "every add saw a distinct total: one activation, strictly one at a time")
        let info = try await clients[1].call(CounterActor.Info(), kind: "counter", key: "first")
        #expect(info.activations == 1)
        #expect(info.total == 300)
        #expect(nodes.contains { $0.id == info.node })
        for client in clients { await client.shutdown() }
        for node in nodes { node.stop() }
    }

    @Test func killingTheOwnerLosesNoAcknowledgedWrite() async throws {
        let directory = try TemporaryDirectory()
        let nodes = try await startNodes(3, store: try await sharedStore(directory))
        let (owner, writer, reader) = (nodes[0], nodes[1], nodes[2])
        let ownerClient = try owner.client()
        let writerClient = try writer.client()
        // The actor lives on the owner; writes go through another node.
        try await ownerClient.call(KVActor.Put(key: "start", value: "1"), kind: "kv", key: "victim")
        let acknowledged = Locked<Set<String>>([])
        let killed = Locked(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<32 {
                group.addTask {
                    var index = lane
                    while index < 10_000 {
                        let key = "key-\(index)"
                        do {
                            try await writerClient.call(KVActor.Put(key: key, value: "v\(index)"), kind: "kv", key: "victim")
                            acknowledged.withLock { _ = $0.insert(key) }
                            index += 32
                        } catch let error as DNAError where error.isRetryable {
                            try await Task.sleep(for: .milliseconds(20))  // back off; the owner is being replaced
                        }
                        if lane == 0, index > 3_000, !killed.withLock({ $0 }) {
                            killed.withLock { $0 = true }
                            owner.kill()
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(killed.withLock { $0 })
        let readerClient = try reader.client()
        var stored: [String: String] = [:]
        var after: String?
        repeat {
            let page = try await retrying {
                try await readerClient.call(KVActor.List(prefix: "key-", after: after, limit: 1000), kind: "kv", key: "victim")
            }.value
            for entry in page { stored[entry.key] = entry.value }
            after = page.count == 1000 ? page.last?.key : nil
        } while after != nil
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count == 10_000)
        let missing = acked.filter { stored[$0] == nil }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(10))")
        for client in [ownerClient, writerClient, readerClient] { await client.shutdown() }
        for node in nodes.dropFirst() { node.stop() }
    }

    @Test func aPausedOwnerNeverWritesOrAnswersAfterTheTakeover() async throws {
        let directory = try TemporaryDirectory()
        let nodes = try await startNodes(3, store: try await sharedStore(directory))
        let (paused, taker, reader) = (nodes[0], nodes[1], nodes[2])
        let pausedClient = try paused.client()
        let takerClient = try taker.client()
        try await pausedClient.call(KVActor.Put(key: "k", value: "old"), kind: "kv", key: "sleeper")
        try await paused.pause()
        // Requests sent to the paused node wait in its socket.
        let staleRead = Task { try await pausedClient.call(KVActor.Get(key: "k"), kind: "kv", key: "sleeper") }
        let staleWrite = Task { try await pausedClient.call(KVActor.Put(key: "k2", value: "stale"), kind: "kv", key: "sleeper") }
        // Another node takes the name over once the failure timeout has passed.
        let (_, errors) = try await retrying { try await takerClient.call(KVActor.Put(key: "k", value: "new"), kind: "kv", key: "sleeper") }
        #expect(errors.allSatisfy { $0.isRetryable })
        let info = try await takerClient.call(KVActor.Get(key: "k"), kind: "kv", key: "sleeper")
        #expect(info == "new")
        paused.signal(SIGCONT)
        // The resumed node must not answer from its old state nor write under its old epoch.
        switch await staleRead.result {
        case .success(let value): #expect(value == "new", "a paused node answered a read from stale state: \(value ?? "nil")")
        case .failure(let error): #expect((error as? DNAError)?.isRetryable == true, "\(error)")
        }
        let staleWriteSucceeded: Bool
        switch await staleWrite.result {
        case .success: staleWriteSucceeded = true
        case .failure(let error):
            staleWriteSucceeded = false
            #expect((error as? DNAError)?.isRetryable == true, "\(error)")
        }
        let readerClient = try reader.client()
        let final = try await retrying { try await readerClient.call(KVActor.Get(key: "k2"), kind: "kv", key: "sleeper") }.value
        // Only a write that went to the new owner (the resumed node forwarding it) may show.
        #expect(final == (staleWriteSucceeded ? "stale" : nil))
        #expect(try await readerClient.call(KVActor.Get(key: "k"), kind: "kv", key: "sleeper") == "new")
        for client in [pausedClient, takerClient, readerClient] { await client.shutdown() }
        for node in nodes { node.stop() }
    }
}
