import DNAStore
import DNA
import DNATesting
import DNAExamples
import CHeapInfo
import Foundation

/// The scenarios of `dna-bench`. Each runs DNA on the embedded store and, where the issue
/// asks for a ratio, the raw SQLite baseline in the same run.
struct BenchRunner {
    var root: String
    var maxBatch: Int
    var pipelineDepth: Int
    var synchronous: SQLiteStore.Configuration.Synchronous
    let clock = ContinuousClock()

    init(root: String, maxBatch: Int, pipelineDepth: Int, synchronous: SQLiteStore.Configuration.Synchronous) {
        self.root = root
        self.maxBatch = maxBatch
        self.pipelineDepth = pipelineDepth
        self.synchronous = synchronous
    }

    private func freshPath(_ name: String) -> String {
        let path = "\(root)/\(name)-\(UUID().uuidString).db"
        return path
    }

    private func node(_ name: String, idleTimeout: Duration = .seconds(3600)) async throws -> Node {
        var sqlite = SQLiteStore.Configuration(path: freshPath(name))
        sqlite.synchronous = synchronous
        var configuration = Node.Configuration(store: .sqlite(sqlite))
        configuration.maxBatch = maxBatch
        configuration.commitPipelineDepth = pipelineDepth
        configuration.idleTimeout = idleTimeout
        return try await Node.started(configuration: configuration, actors: [KVActor.self])
    }

    /// Raw SQLite: the same upsert into the same table, prepared, `batch` rows per transaction,
    /// one row per statement (the baseline) or `rowsPerStatement` (as DNA's writer does).
    private func baseline(
        rows: Int, batch: Int, rowsPerStatement: Int = 1, row: (Int) -> (actor: Int64, key: String)
    ) throws -> Double {
        let connection = try SQLiteConnection(path: freshPath("baseline"))
        try SQLiteSchema.configure(connection, synchronous: synchronous, busyTimeout: .milliseconds(200))
        try connection.execute(SQLiteSchema.moduleDataTable)
        var upserts: [Int: SQLiteStatement] = [:]
        let value = Array("test".utf8)
        let start = clock.now
        var index = 0
        while index < rows {
            try connection.execute("BEGIN IMMEDIATE")
            let end = min(rows, index + batch)
            while index < end {
                let count = min(rowsPerStatement, end - index)
                if upserts[count] == nil { upserts[count] = try connection.prepare(SQLiteSchema.upsertModuleRows(count)) }
                let upsert = upserts[count]!
                for position in 0..<count {
                    let (actor, key) = row(index + position)
                    let first = Int32(4 * position + 1)
                    upsert.bind(first, actor)
                    upsert.bind(first + 1, "kv")
                    upsert.bind(first + 2, bytes: Array(key.utf8))
                    upsert.bind(first + 3, bytes: value)
                }
                try upsert.run()
                index += count
            }
            try connection.execute("COMMIT")
        }
        return Double(rows) / seconds(clock.now - start)
    }

    /// The fields every throughput scenario reports: its rate and its ratio to the baseline.
    private func throughputReport(_ scenario: String, messages: Int, seconds elapsed: Double, baselineRate: Double) -> BenchReport {
        let rate = Double(messages) / elapsed
        var report = BenchReport(scenario: scenario)
        report.set("messages", messages)
        report.set("seconds", elapsed)
        report.set("puts_per_second", rate)
        report.set("baseline_rows_per_second", baselineRate)
        report.set("ratio", rate / baselineRate)
        return report
    }

    func seed(messages: Int) async throws -> BenchReport {
        let baselineCPU = ProcessCPU.now()
        let baselineRate = try baseline(rows: messages + 1, batch: maxBatch) { (1, String($0)) }
        let baselineCPUSeconds = ProcessCPU.now() - baselineCPU
        // Not the baseline: raw SQLite with the multi-row statements DNA's writer uses,
        // reported so that DNA's figure can be read against the best of raw SQLite too.
        let multiRowBaselineRate = try baseline(
            rows: messages + 1, batch: maxBatch, rowsPerStatement: SQLiteSchema.maxRowsPerUpsert
        ) { (1, String($0)) }
        let node = try await node("seed")
        let dnaCPU = ProcessCPU.now()
        let actor = try node.ref(KVActor.self, key: "bench-\(UInt32.random(in: 0...UInt32.max))")
        let start = clock.now
        for i in 0..<messages { try actor.cast(KVActor.Put(key: String(i), value: "test")) }
        let castsDone = seconds(clock.now - start)
        try await actor.call(KVActor.Put(key: String(messages), value: "test"))
        let elapsed = seconds(clock.now - start)
        let dnaCPUSeconds = ProcessCPU.now() - dnaCPU
        await node.shutdown()
        var report = throughputReport("seed", messages: messages, seconds: elapsed, baselineRate: baselineRate)
        report.set("max_batch", maxBatch)
        report.set("casts_enqueued_seconds", castsDone)
        // CPU time of the whole process (all threads), steadier than wall time here.
        report.set("baseline_cpu_seconds", baselineCPUSeconds)
        report.set("cpu_seconds", dnaCPUSeconds)
        report.set("original_puts_per_second", 337_868)
        report.set("baseline_multirow_rows_per_second", multiRowBaselineRate)
        report.set("ratio_to_multirow", Double(messages) / elapsed / multiRowBaselineRate)
        return report
    }

    func manyActors(actors: Int, putsPerActor: Int) async throws -> BenchReport {
        let total = actors * putsPerActor
        // The baseline stores the same rows in the order DNA receives them (round by round,
        // every actor once per round); the same rows sorted by actor are reported too.
        let baselineRate = try baseline(rows: total, batch: maxBatch) { index in
            (Int64(index % actors + 1), String(index / actors))
        }
        let sortedBaselineRate = try baseline(rows: total, batch: maxBatch) { index in
            (Int64(index / putsPerActor + 1), String(index % putsPerActor))
        }
        let node = try await node("many")
        let refs = try (0..<actors).map { try node.ref(KVActor.self, key: "actor-\($0)") }
        let start = clock.now
        for round in 0..<(putsPerActor - 1) {
            let key = String(round)
            for ref in refs { try ref.cast(KVActor.Put(key: key, value: "test")) }
        }
        // The last put of every actor is awaited: done means durable.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ref in refs {
                group.addTask { try await ref.call(KVActor.Put(key: String(putsPerActor - 1), value: "test")) }
            }
            try await group.waitForAll()
        }
        let elapsed = seconds(clock.now - start)
        await node.shutdown()
        var report = throughputReport("many-actors", messages: total, seconds: elapsed, baselineRate: baselineRate)
        report.set("actors", actors)
        report.set("baseline_sorted_rows_per_second", sortedBaselineRate)
        report.set("ratio_to_sorted", Double(total) / elapsed / sortedBaselineRate)
        return report
    }

    func callLatency(calls: Int) async throws -> BenchReport {
        let node = try await node("latency")
        let actor = try node.ref(KVActor.self, key: "latency")
        try await actor.call(KVActor.Put(key: "warm", value: "up"))
        var samples: [Double] = []
        samples.reserveCapacity(calls)
        let start = clock.now
        for i in 0..<calls {
            let before = clock.now
            try await actor.call(KVActor.Put(key: String(i), value: "test"))
            samples.append(seconds(clock.now - before) * 1e6)
        }
        let elapsed = seconds(clock.now - start)
        await node.shutdown()
        samples.sort()
        var report = BenchReport(scenario: "call-latency")
        report.set("messages", calls)
        report.set("seconds", elapsed)
        report.set("puts_per_second", Double(calls) / elapsed)
        report.set("p50_us", percentile(samples, 0.5))
        report.set("p99_us", percentile(samples, 0.99))
        report.set("p999_us", percentile(samples, 0.999))
        return report
    }

    func activation(actors: Int, concurrency: Int = 256) async throws -> BenchReport {
        let node = try await node("activation")
        let refs = try (0..<actors).map { try node.ref(KVActor.self, key: "cold-\($0)") }
        let start = clock.now
        let samples = try await withThrowingTaskGroup(of: Double.self) { group in
            var samples: [Double] = []
            var next = 0
            func launch() {
                let ref = refs[next]
                next += 1
                group.addTask {
                    let before = ContinuousClock.now
                    _ = try await ref.call(KVActor.Get(key: "k"))
                    return seconds(ContinuousClock.now - before) * 1e6
                }
            }
            while next < min(concurrency, refs.count) { launch() }
            while let sample = try await group.next() {
                samples.append(sample)
                if next < refs.count { launch() }
            }
            return samples.sorted()
        }
        let elapsed = seconds(clock.now - start)
        let count = node.activationCount
        await node.shutdown()
        var report = BenchReport(scenario: "activation")
        report.set("messages", actors)
        report.set("activations", count)
        report.set("seconds", elapsed)
        report.set("activations_per_second", Double(actors) / elapsed)
        report.set("concurrency", concurrency)
        report.set("p50_us", percentile(samples, 0.5))
        report.set("p99_us", percentile(samples, 0.99))
        return report
    }

    func memory(actors: Int) async throws -> BenchReport {
        let node = try await node("memory")
        let refs = try (0..<actors).map { try node.ref(KVActor.self, key: "idle-\($0)") }
        // Warm the allocator and the directory's growth before the first reading.
        _ = try await refs[0].call(KVActor.Get(key: "k"))
        let before = MemoryReading.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 1
            for _ in 0..<256 where next < refs.count {
                let ref = refs[next]
                next += 1
                group.addTask { _ = try await ref.call(KVActor.Get(key: "k")) }
            }
            while try await group.next() != nil {
                if next < refs.count {
                    let ref = refs[next]
                    next += 1
                    group.addTask { _ = try await ref.call(KVActor.Get(key: "k")) }
                }
            }
        }
        let after = MemoryReading.now()
        let count = node.activationCount
        let perHeap = Double(after.heapBytes - before.heapBytes) / Double(actors - 1)
        let perRSS = Double(after.residentBytes - before.residentBytes) / Double(actors - 1)
        await node.shutdown()
        var report = BenchReport(scenario: "memory")
        report.set("messages", actors)
        report.set("activations", count)
        report.set("bytes_per_activation", perHeap)
        report.set("rss_bytes_per_activation", perRSS)
        return report
    }
}

/// Heap in use (malloc's own count) and resident set size.
struct MemoryReading {
    var heapBytes: Int
    var residentBytes: Int

    static func now() -> MemoryReading {
        let heap = Int(dna_heap_bytes_in_use())
        var resident = 0
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let parts = statm.split(separator: " ")
            if parts.count > 1, let pages = Int(parts[1]) { resident = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        return MemoryReading(heapBytes: heap, residentBytes: resident)
    }
}

/// CPU time (user + system) of the whole process so far, in seconds.
enum ProcessCPU {
    static func now() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
