import DNA
import DNAPostgres
import DNATesting
import Foundation
import Synchronization

/// `dna-bench pipeline`: three forwarding stages, 8 partitions each (in → s1 →
/// s2 → out), against writing the same rows straight into the same store in the same run.
enum BenchPipeline {
    static let partitions = 8
    static let recordSize = 100
    /// The four streams of the current run (a fresh namespace per run).
    static let streams = Mutex<[StreamName]>([])
    static func stream(_ index: Int) -> StreamName { streams.withLock { $0[index] } }

    static func forward(_ records: [StreamRecord], to output: StreamName, context: ActorContext) throws {
        for record in records { try context.append(to: output, key: record.key, value: record.value) }
    }

    /// A record: its key is its number; its value starts with the wall-clock microsecond it
    /// was appended at.
    static func record(_ number: Int, at microseconds: Int64) -> StreamAppendRecord {
        var value = [UInt8](repeating: 0x2e, count: recordSize)
        withUnsafeBytes(of: microseconds.bigEndian) { for i in 0..<8 { value[i] = $0[i] } }
        var key = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(number).bigEndian) { for i in 0..<8 { key[i] = $0[i] } }
        return StreamAppendRecord(key: key, value: value)
    }

    static func number(of key: [UInt8]) -> Int { Int(key.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) }
    static func stamp(of value: [UInt8]) -> Int64 { Int64(bitPattern: value.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) }
    static var nowMicroseconds: Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// A forwarding stage of the bench: reads stream `hop - 1`, appends to stream `hop`.
protocol BenchHop: StreamStage {
    static var hop: Int { get }
}

extension BenchHop {
    static var input: StreamName { BenchPipeline.stream(hop - 1) }
    func process(_ records: [StreamRecord], context: ActorContext) async throws {
        try BenchPipeline.forward(records, to: BenchPipeline.stream(Self.hop), context: context)
    }
}

final class BenchStageOne: BenchHop {
    static let kind: ActorKind = "bench-stage-1"
    static let hop = 1
    init(context: ActorContext) async throws {}
}

final class BenchStageTwo: BenchHop {
    static let kind: ActorKind = "bench-stage-2"
    static let hop = 2
    init(context: ActorContext) async throws {}
}

final class BenchStageThree: BenchHop {
    static let kind: ActorKind = "bench-stage-3"
    static let hop = 3
    init(context: ActorContext) async throws {}
}

extension BenchRunner {
    func pipeline(records: Int, postgresURL: String?) async throws -> BenchReport {
        guard records >= 1_000 else { throw BenchFailure("--messages must be at least 1,000 for pipeline") }
        let run = UUID().uuidString.prefix(8).lowercased()
        BenchPipeline.streams.withLock { streams in
            streams = ["in", "s1", "s2", "out"].map { StreamName(namespace: "bench-\(run)", name: $0) }
        }
        let storeChoice: Node.StoreChoice
        if let postgresURL {
            storeChoice = .postgres(url: postgresURL)
        } else {
            var sqlite = SQLiteStore.Configuration(path: "\(root)/pipeline-\(run).db")
            sqlite.synchronous = synchronous
            storeChoice = .sqlite(sqlite)
        }
        var configuration = Node.Configuration(store: storeChoice)
        configuration.maxBatch = maxBatch
        configuration.commitPipelineDepth = pipelineDepth
        let node = try await Node.started(
            configuration: configuration, actors: [BenchStageOne.self, BenchStageTwo.self, BenchStageThree.self])
        let store = node.store
        for index in 0..<4 {
            try await store.createStream(BenchPipeline.stream(index), partitions: BenchPipeline.partitions, retention: StreamRetention())
        }

        // Throughput: records fed as fast as they are taken, until stage three has them all.
        let start = clock.now
        try await feed(node, from: 0, count: records, producer: "bench-\(run)")
        try await waitUntilConsumed(store, total: records)
        let elapsed = seconds(clock.now - start)
        let rate = Double(records) / elapsed

        // Latency at half that rate, for five seconds.
        let halfRate = rate / 2
        let tick = Duration.milliseconds(10)
        let perTick = max(1, Int(halfRate / 100))
        var fed = records
        let latencyStart = clock.now
        var next = latencyStart
        while clock.now - latencyStart < .seconds(5) {
            try await feed(node, from: fed, count: perTick, producer: "bench-\(run)")
            fed += perTick
            next = next + tick
            try await clock.sleep(until: next)
        }
        try await waitUntilConsumed(store, total: fed)
        // Read the output back: every record once; the latencies of those fed at half rate.
        let (duplicates, missing, latencies) = try await check(store, total: fed, timedFrom: records)
        await node.shutdown()

        let baselineSeconds = try await pipelineBaseline(records: records, postgresURL: postgresURL, run: String(run))
        var report = BenchReport(scenario: "pipeline")
        report.set("store", postgresURL == nil ? "sqlite" : "postgres")
        report.set("stages", 3)
        report.set("partitions", BenchPipeline.partitions)
        report.set("records", records)
        report.set("record_bytes", BenchPipeline.recordSize)
        report.set("seconds", elapsed)
        report.set("records_per_second", rate)
        report.set("baseline_seconds", baselineSeconds)
        report.set("baseline_records_per_second", Double(records) / baselineSeconds)
        report.set("ratio", baselineSeconds / elapsed)
        report.set("half_rate_records_per_second", Double(perTick) * 100)
        report.set("latency_records", latencies.count)
        report.set("p50_ms", percentile(latencies, 0.50))
        report.set("p99_ms", percentile(latencies, 0.99))
        report.set("max_ms", latencies.last ?? 0)
        report.set("duplicates", duplicates)
        report.set("missing", missing)
        return report
    }

    private func feed(_ node: Node, from first: Int, count: Int, producer: String) async throws {
        var index = first
        while index < first + count {
            let end = min(first + count, index + 1_000)
            let now = BenchPipeline.nowMicroseconds
            let records = (index..<end).map { BenchPipeline.record($0, at: now) }
            _ = try await node.append(
                records, to: BenchPipeline.stream(0), producer: StreamProducer(id: producer, firstSequence: Int64(index + 1)))
            index = end
        }
    }

    /// Until stage three's checkpoints cover `total` records.
    private func waitUntilConsumed(_ store: any StreamStore, total: Int) async throws {
        let deadline = clock.now + .seconds(3600)
        while clock.now < deadline {
            let status = try await store.streamStatus(BenchPipeline.stream(2))
            let consumed = status.partitions.reduce(Int64(0)) { $0 + (status.consumers[BenchStageThree.kind.name]?[$1.partition] ?? 1) - 1 }
            if consumed >= Int64(total) { return }
            try await clock.sleep(for: .milliseconds(5))
        }
        throw BenchFailure("the pipeline did not finish within an hour")
    }

    /// Reads the output: duplicates, missing records, and the latencies of records numbered
    /// from `timedFrom` on (from their stamp, taken as they were fed, to their append to the
    /// output stream, as the store recorded it: in the transaction that made it durable).
    private func check(
        _ store: any StreamStore, total: Int, timedFrom: Int
    ) async throws -> (duplicates: Int, missing: Int, latencies: [Double]) {
        var seen = [UInt8](repeating: 0, count: total)
        var duplicates = 0
        var latencies: [Double] = []
        let status = try await store.streamStatus(BenchPipeline.stream(3))
        for partition in status.partitions {
            var from = partition.firstSequence
            while from < partition.nextSequence {
                let page = try await store.readStream(BenchPipeline.stream(3), partition: partition.partition, from: from, limit: 10_000)
                for record in page {
                    let number = BenchPipeline.number(of: record.key)
                    guard number < total else { duplicates += 1; continue }
                    if seen[number] != 0 { duplicates += 1 }
                    seen[number] = 1
                    if number >= timedFrom {
                        latencies.append(max(0, Double(record.appendedMilliseconds) - Double(BenchPipeline.stamp(of: record.value)) / 1000))
                    }
                }
                from = (page.last?.sequence ?? from) + 1
                if page.isEmpty { break }
            }
        }
        return (duplicates, seen.lazy.filter { $0 == 0 }.count, latencies.sorted())
    }

    /// The same rows written straight into the same store: the records appended to the
    /// input, then, stage by stage, to the next stream in batches of a stage's size with a
    /// checkpoint after each, eight partitions at a time.
    private func pipelineBaseline(records: Int, postgresURL: String?, run: String) async throws -> Double {
        if let postgresURL {
            return try await PostgresStore(configuration: .init(url: postgresURL)).withRunning { store in
                try await writeBaselineRows(records: records, store: store, run: run)
            }
        }
        var sqlite = SQLiteStore.Configuration(path: "\(root)/pipeline-baseline-\(run).db")
        sqlite.synchronous = synchronous
        let store = SQLiteStore(configuration: sqlite)
        try await store.open()
        let elapsed = try await writeBaselineRows(records: records, store: store, run: run)
        await store.close()
        return elapsed
    }

    private func writeBaselineRows(records: Int, store: any ActorStore, run: String) async throws -> Double {
        let streams = ["in", "s1", "s2", "out"].map { StreamName(namespace: "baseline-\(run)", name: $0) }
        for stream in streams { try await store.createStream(stream, partitions: BenchPipeline.partitions, retention: StreamRetention()) }
        let start = clock.now
        var index = 0
        while index < records {
            let end = min(records, index + 1_000)
            let now = BenchPipeline.nowMicroseconds
            _ = try await store.append(
                (index..<end).map { BenchPipeline.record($0, at: now) }, to: streams[0],
                producer: StreamProducer(id: "baseline", firstSequence: Int64(index + 1)))
            index = end
        }
        for hop in 1...3 {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for partition in 0..<BenchPipeline.partitions {
                    group.addTask {
                        var from: Int64 = 1
                        while true {
                            let batch = try await store.readStream(streams[hop - 1], partition: partition, from: from, limit: 500)
                            if batch.isEmpty { return }
                            _ = try await store.append(
                                batch.map { StreamAppendRecord(key: $0.key, value: $0.value) }, to: streams[hop], producer: nil)
                            from = batch[batch.count - 1].sequence + 1
                            try await store.commitProgress(
                                consumer: "hop-\(hop)", stream: streams[hop - 1], partition: partition, next: from)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return seconds(clock.now - start)
    }
}
