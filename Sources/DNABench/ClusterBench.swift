import DNA
import DNATesting
import DNAExamples
import DNAPostgres
import DNATransport
import Foundation

/// The cluster scenarios of `dna-bench`: calls between two nodes, failover after SIGKILL,
/// and the seed on PostgreSQL against raw PostgreSQL.
extension BenchRunner {
    static let benchSecret = Array("dna-bench-secret-\(UInt64.random(in: 0...UInt64.max))".utf8)

    func clusterNode(path: String, rebalancing: Bool = false) async throws -> Node {
        var configuration = Node.Configuration(store: .sqlite(path: path))
        // Rounds would move the actors a scenario placed; only `rebalance` wants them.
        var cluster = Node.Cluster(name: "bench", listen: PeerAddress(host: "127.0.0.1", port: 0), secret: Self.benchSecret)
        cluster.rebalancing.enabled = rebalancing
        configuration.cluster = cluster
        configuration.maxBatch = maxBatch
        configuration.commitPipelineDepth = pipelineDepth
        configuration.idleTimeout = .seconds(3600)
        return try await Node.started(configuration: configuration, actors: [KVActor.self])
    }

    /// Node A calls an actor hosted on node B over loopback: sequential awaited calls
    /// (latency), then `casts` fire-and-forget puts and one awaited put (throughput), against
    /// the same puts sent on node B itself in the same run.
    func remoteCalls(calls: Int, casts: Int) async throws -> BenchReport {
        let path = "\(root)/remote-\(UUID().uuidString).db"
        let nodeB = try await clusterNode(path: path)
        let nodeA = try await clusterNode(path: path)
        // Cluster nodes heartbeat in run(); without it they stop serving after their lease.
        let running = [nodeA, nodeB].map { node in Task { try await node.run() } }
        defer { for task in running { task.cancel() } }
        // Hosted on B: its first message arrives there.
        try await nodeB.ref(KVActor.self, key: "remote-latency").call(KVActor.Put(key: "warm", value: "up"))
        try await nodeB.ref(KVActor.self, key: "remote-casts").call(KVActor.Put(key: "warm", value: "up"))
        try await nodeB.ref(KVActor.self, key: "local-casts").call(KVActor.Put(key: "warm", value: "up"))

        func latencies(_ ref: ActorRef<KVActor>) async throws -> [Double] {
            for i in 0..<100 { try await ref.call(KVActor.Put(key: "warm-\(i)", value: "test")) }
            var samples: [Double] = []
            samples.reserveCapacity(calls)
            for i in 0..<calls {
                let before = clock.now
                try await ref.call(KVActor.Put(key: String(i), value: "test"))
                samples.append(seconds(clock.now - before) * 1e6)
            }
            return samples.sorted()
        }
        let localSamples = try await latencies(try nodeB.ref(KVActor.self, key: "remote-latency"))
        let samples = try await latencies(try nodeA.ref(KVActor.self, key: "remote-latency"))

        /// The rate, and the process's CPU time per message (steadier than the rate on a
        /// shared machine: both nodes run in this process).
        func castRun(_ ref: ActorRef<KVActor>) async throws -> (rate: Double, cpuMicroseconds: Double) {
            let cpu = ProcessCPU.now()
            let start = clock.now
            for i in 0..<casts { try ref.cast(KVActor.Put(key: String(i), value: "test")) }
            try await ref.call(KVActor.Put(key: String(casts), value: "test"))
            let rate = Double(casts + 1) / seconds(clock.now - start)
            return (rate, (ProcessCPU.now() - cpu) * 1e6 / Double(casts + 1))
        }
        let (localRate, localCPU) = try await castRun(try nodeB.ref(KVActor.self, key: "local-casts"))
        let (remoteRate, remoteCPU) = try await castRun(try nodeA.ref(KVActor.self, key: "remote-casts"))
        let remoteHosted = nodeA.activationCount == 0
        await nodeA.shutdown()
        await nodeB.shutdown()

        var report = BenchReport(scenario: "remote-calls")
        report.set("messages", casts + 1)
        report.set("calls", calls)
        report.set("p50_us", percentile(samples, 0.5))
        report.set("p99_us", percentile(samples, 0.99))
        report.set("p999_us", percentile(samples, 0.999))
        report.set("local_p50_us", percentile(localSamples, 0.5))
        report.set("puts_per_second", remoteRate)
        report.set("baseline_rows_per_second", localRate)
        report.set("baseline", "the same casts sent on the hosting node")
        report.set("ratio", remoteRate / localRate)
        report.set("cpu_us_per_cast", remoteCPU)
        report.set("baseline_cpu_us_per_cast", localCPU)
        report.set("all_hosted_on_b", remoteHosted)
        report.set("seconds", Double(casts + 1) / remoteRate)
        return report
    }

    /// The transport alone on loopback (no actors, no store): the floor under `remote-calls`.
    func transport(requests: Int) async throws -> BenchReport {
        let result = try await TransportBenchmark.run(requests: requests)
        var report = BenchReport(scenario: "transport")
        report.set("messages", result.requests)
        report.set("payload_bytes", result.payloadSize)
        report.set("seconds", Double(result.requests) / result.requestsPerSecond)
        report.set("requests_per_second", result.requestsPerSecond)
        report.set("p50_us", result.p50Microseconds)
        report.set("p99_us", result.p99Microseconds)
        return report
    }

    /// Three `dna node` processes; SIGKILL the owner of an actor and time until a call
    /// through another node succeeds on the new owner.
    func failover(store: String?, failureTimeout: Double = 5) async throws -> BenchReport {
        let storeText = store ?? "sqlite:\(root)/failover-\(UUID().uuidString).db"
        let processes = try await (0..<3).asyncMap { _ in try await ChildNode.start(store: storeText, failureTimeout: failureTimeout) }
        defer { for process in processes { process.terminate() } }
        let owner = processes[0]
        let ownerClient = try ClusterClient(cluster: "bench", secret: Self.benchSecret, node: owner.address)
        let otherClient = try ClusterClient(cluster: "bench", secret: Self.benchSecret, node: processes[1].address)
        try await ownerClient.call(KVActor.Put(key: "before", value: "1"), kind: "kv", key: "failover")
        try await otherClient.call(KVActor.Put(key: "through-b", value: "1"), kind: "kv", key: "failover")
        let killedAt = clock.now
        owner.kill()
        var attempts = 0
        while true {
            attempts += 1
            do {
                try await otherClient.call(KVActor.Put(key: "after", value: "1"), kind: "kv", key: "failover")
                break
            } catch let error as DNAError where error.isRetryable {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let elapsed = seconds(clock.now - killedAt)
        let survived = try await otherClient.call(KVActor.Get(key: "before"), kind: "kv", key: "failover") == "1"
        await ownerClient.shutdown()
        await otherClient.shutdown()
        var report = BenchReport(scenario: "failover")
        report.set("seconds", elapsed)
        report.set("failover_seconds", elapsed)
        report.set("failure_timeout_seconds", failureTimeout)
        report.set("target_seconds", failureTimeout + 1)
        report.set("attempts", attempts)
        report.set("data_survived", survived)
        report.set("store", store == nil ? "sqlite" : "postgres")
        return report
    }

    /// The seed on PostgreSQL: one actor, `messages` casts and one call, against raw
    /// multi-row upserts of the same rows into the same table layout, in the same run.
    func seedPostgres(messages: Int, url: String) async throws -> BenchReport {
        var configuration = Node.Configuration(store: .postgres(url: url))
        configuration.maxBatch = maxBatch
        configuration.commitPipelineDepth = pipelineDepth
        configuration.idleTimeout = .seconds(3600)
        let node = try await Node.started(configuration: configuration, actors: [KVActor.self])
        let actor = try node.ref(KVActor.self, key: "bench-\(UInt32.random(in: 0...UInt32.max))")
        let start = clock.now
        for i in 0..<messages { try actor.cast(KVActor.Put(key: String(i), value: "test")) }
        try await actor.call(KVActor.Put(key: String(messages), value: "test"))
        let elapsed = seconds(clock.now - start)
        await node.shutdown()
        // After DNA's run: its store refuses a new database that holds another table.
        let (baselineRate, _) = try await PostgresBaseline.rowsPerSecond(
            url: url, rows: messages + 1, batchSize: maxBatch, value: Array("test".utf8))
        var report = BenchReport(scenario: "seed")
        report.set("store", "postgres")
        report.set("messages", messages)
        report.set("seconds", elapsed)
        report.set("puts_per_second", Double(messages + 1) / elapsed)
        report.set("baseline_rows_per_second", baselineRate)
        report.set("baseline", "raw PostgreSQL multi-row upserts, \(maxBatch) rows per statement")
        report.set("ratio", Double(messages + 1) / elapsed / baselineRate)
        return report
    }
}

/// A `dna node` child process of this executable.
struct ChildNode {
    let process: Process
    let address: PeerAddress

    static func start(store: String, failureTimeout: Double, arguments extra: [String] = []) async throws -> ChildNode {
        let process = Process()
        // `dna-bench node` (`dna node`, hidden): no other executable needs to be built.
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments =
            [
                "node", "--store", store, "--cluster", "bench", "--listen", "127.0.0.1:0", "--failure-timeout", "\(failureTimeout)",
                "--log-level", "error",
            ] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["DNA_CLUSTER_SECRET"] = String(decoding: BenchRunner.benchSecret, as: UTF8.self)
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let handle = output.fileHandleForReading
        let line: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var data = Data()
                while !data.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        let words = line.split(whereSeparator: \.isWhitespace)
        guard words.count >= 5, words[0] == "node" else {
            process.terminate()
            throw BenchFailure("dna node did not start: \(line)")
        }
        return ChildNode(process: process, address: try PeerAddress(parsing: String(words[4])))
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async throws -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
