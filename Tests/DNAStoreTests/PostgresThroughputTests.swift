import DNAPostgres
import DNAStore
import Foundation
import Testing

/// A measurement, not a check: the store's commit throughput for one actor against the raw
/// PostgreSQL baseline, on a durable server (`fsync` on). Runs only with
/// `DNA_PG_BENCH=1` (rows from `DNA_PG_BENCH_ROWS`, default 100,000), best in release:
///
///     DNA_PG_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter PostgresThroughput
@Suite("PostgreSQL throughput", .enabled(if: ProcessInfo.processInfo.environment["DNA_PG_BENCH"] == "1"))
struct PostgresThroughputTests {
    static let batchSize = 256
    static let depth = 4
    static let rounds = 3

    @Test func storeCommitsAgainstTheBaseline() async throws {
        let rows = Int(ProcessInfo.processInfo.environment["DNA_PG_BENCH_ROWS"] ?? "") ?? 100_000
        let value = [UInt8](repeating: 0x61, count: 64)
        let server = try await LocalPostgresServer.start()
        do {
            // Alternating rounds, best of each: the machine is shared, and what one run leaves
            // behind (checkpoints, autovacuum) must not count against the next one only.
            var baselineBest = 0.0
            var storeBest = 0.0
            for round in 1...Self.rounds {
                let baselineURL = try await server.createDatabase(named: "bench_baseline_\(round)")
                let cpu0 = Self.cpuSeconds()
                let baseline = try await PostgresBaseline.rowsPerSecond(
                    url: baselineURL, rows: rows, batchSize: Self.batchSize, value: value)
                baselineBest = max(baselineBest, baseline.rowsPerSecond)
                let cpu1 = Self.cpuSeconds()

                let url = try await server.createDatabase(named: "bench_store_\(round)")
                let store = try await PostgresStore(configuration: try PostgresStore.Configuration(url: url))
                let node = NodeID(rawValue: "bench")
                try await store.join(node: node, cluster: "bench", address: "x")
                guard case .granted(let registration, _) = try await store.activate(
                    ActivationRequest(actor: ActorID(namespace: "bench", kind: "kv", key: "one"), node: node, failureTimeout: .seconds(60)))
                else {
                    Issue.record("not granted")
                    return
                }
                let cpu2 = Self.cpuSeconds()
                let seconds = try await Self.commitAll(store, registration, rows: rows, value: value)
                let cpu3 = Self.cpuSeconds()
                await store.close()
                storeBest = max(storeBest, Double(rows) / seconds)
                print(
                    "round \(round): baseline \(Int(baseline.rowsPerSecond)) rows/s (client CPU \(String(format: "%.2f", cpu1 - cpu0)) s),"
                        + " store \(Int(Double(rows) / seconds)) rows/s (client CPU \(String(format: "%.2f", cpu3 - cpu2)) s)")
            }
            print(
                """
                PostgreSQL throughput, \(rows) rows of \(value.count) bytes, batches of \(Self.batchSize), best of \(Self.rounds):
                  baseline (one connection, one upsert per batch): \(Int(baselineBest)) rows/s
                  PostgresStore (one actor, pipeline depth \(Self.depth)): \(Int(storeBest)) rows/s
                  ratio: \(String(format: "%.2f", storeBest / baselineBest))
                """)
            #expect(storeBest > 0)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// CPU seconds (user + system) this process has used.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Commits `rows` rows in batches, `depth` batches in flight at once as the runtime
    /// does; returns the seconds from the first hand-over to the last completion.
    static func commitAll(_ store: PostgresStore, _ registration: Registration, rows: Int, value: [UInt8]) async throws -> Double {
        let batches = (rows + batchSize - 1) / batchSize
        let (completions, continuation) = AsyncStream.makeStream(of: Result<Void, StoreError>.self)
        func hand(_ index: Int) {
            let first = index * batchSize
            let operations = (first..<min(rows, first + batchSize)).map {
                StorageOperation(module: "kv", key: Array("key-\($0)".utf8), value: value)
            }
            store.commit(CommitBatch(registration: registration, sequence: Int64(index + 1), operations: operations)) {
                continuation.yield($0)
            }
        }
        let clock = ContinuousClock()
        let started = clock.now
        var handed = 0
        while handed < min(depth, batches) {
            hand(handed)
            handed += 1
        }
        var done = 0
        for await result in completions {
            try result.get()
            done += 1
            if done == batches { break }
            if handed < batches {
                hand(handed)
                handed += 1
            }
        }
        let elapsed = started.duration(to: clock.now)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
