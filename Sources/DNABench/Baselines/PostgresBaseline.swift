import DNAPostgres
import DNAStore
import Foundation
import Logging
import PostgresNIO

/// The raw PostgreSQL baseline of `dna-bench seed --store postgres://…`: what
/// the server does with plain multi-row upserts, no DNA in between.
enum PostgresBaseline {
    /// The table of the baseline: the layout of `dna_module_data` under another name.
    static let table = "dna_bench_baseline"

    /// Upserts `rows` rows with distinct keys (`key-<i>` as UTF-8, one actor, module
    /// `kv`) into a fresh ``table`` (dropped and created first), `batchSize` rows per
    /// statement (`INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE`, one round trip
    /// each), sequentially on one connection, timed from the first statement to the last.
    static func rowsPerSecond(
        url: String, rows: Int, batchSize: Int, value: [UInt8]
    ) async throws -> (rowsPerSecond: Double, seconds: Double) {
        guard rows > 0, batchSize > 0 else {
            throw StoreError(.invalidArgument, "rows and batchSize must be positive")
        }
        let configuration = try PostgresStore.Configuration(url: url)
        let logger = Logger(label: "dna.postgres.baseline")
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try configuration.connectionConfiguration(), id: 0, logger: logger)
        } catch {
            throw PostgresErrors.map(error, "connecting to \(configuration.redactedURL)")
        }
        do {
            try await connection.run(PostgresQuery(unsafeSQL: "DROP TABLE IF EXISTS \(table)"), logger: logger)
            try await connection.run(
                PostgresQuery(unsafeSQL: PostgresSchema.moduleDataTable(named: table)), logger: logger)
            let clock = ContinuousClock()
            let started = clock.now
            var next = 0
            while next < rows {
                let end = min(rows, next + batchSize)
                let statement = BaselineStatement(
                    modules: Array(repeating: "kv", count: end - next),
                    keys: (next..<end).map { Array("key-\($0)".utf8) },
                    values: Array(repeating: value, count: end - next))
                for try await _ in try await connection.execute(statement, logger: logger) {}
                next = end
            }
            let elapsed = started.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            try? await connection.close()
            return (Double(rows) / seconds, seconds)
        } catch {
            try? await connection.close()
            throw PostgresErrors.map(error, "baseline on \(configuration.redactedURL)")
        }
    }
}

/// One multi-row upsert of the baseline (prepared once, like the store's commit).
private struct BaselineStatement: PostgresPreparedStatement {
    typealias Row = Int64

    static let sql = """
        INSERT INTO \(PostgresBaseline.table) (actor_id, module, key, value)
        SELECT 1, u.module, u.key, u.value FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS u(module, key, value)
        ON CONFLICT (actor_id, module, key) DO UPDATE SET value = excluded.value
        """

    var modules: [String]
    var keys: [[UInt8]]
    var values: [[UInt8]]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(modules)
        bindings.append(ByteaArray(keys))
        bindings.append(ByteaArray(values))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
}
