// Placeholder until the pg-store branch lands (it brings PostgresBaseline.swift).
public enum PostgresBaseline {
    public static func rowsPerSecond(url: String, rows: Int, batchSize: Int, value: [UInt8]) async throws -> (rowsPerSecond: Double, seconds: Double) {
        fatalError("unimplemented")
    }
}
