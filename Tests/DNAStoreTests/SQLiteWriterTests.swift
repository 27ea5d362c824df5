@testable import DNAStore
import Foundation
import DNATestSupport
import Testing

/// The SQLite session's writes, below the worker: what its statements keep bound.
@Suite("SQLite writer", .integration, .serialized)
struct SQLiteWriterTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dna-writer-\(UUID().uuidString)")

    func withSession(_ body: (SQLiteSession, Registration) throws -> Void) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("writer.db").path
        let connection = try SQLiteConnection(path: path)
        try SQLiteSchema.configure(connection, synchronous: .normal, busyTimeout: .milliseconds(200))
        try SQLiteSchema.prepare(connection, path: path)
        let session = try SQLiteSession(connection)
        let node = NodeID(rawValue: "n")
        try session.join(node: node, cluster: "c", address: "x", failureTimeout: .seconds(5), labels: [])
        try session.heartbeat(node: node, state: .up, activations: 0)
        let actor = ActorID(namespace: "test", kind: "kv", key: "a")
        guard
            case .granted(let registration, _) = try session.activate(
                ActivationRequest(actor: actor, node: node))
        else {
            Issue.record("not granted")
            return
        }
        try body(session, registration)
    }

    func write(_ session: SQLiteSession, _ registration: Registration, sequence: Int64, rows: Int, valueSize: Int) throws {
        let operations = (0..<rows).map { index in
            StorageOperation(
                module: "kv", key: Array("k\(sequence)-\(1000 + index)".utf8), value: [UInt8](repeating: 0xAB, count: valueSize))
        }
        try session.connection.execute("BEGIN IMMEDIATE")
        try session.commit(CommitBatch(registration: registration, sequence: sequence, operations: operations))
        try session.flushWrites()
        try session.connection.execute("COMMIT")
    }

    /// Whether any upsert statement still holds a bound blob.
    func holdsValues(_ session: SQLiteSession) -> Bool {
        session.preparedUpserts.contains { $0.expandedSQL.contains("x'") }
    }

    @Test func smallWritesStayBoundLargeOnesAreLetGo() throws {
        try withSession { session, registration in
            try write(session, registration, sequence: 1, rows: 70, valueSize: 10)
            #expect(holdsValues(session), "small values are left bound (cheaper to rebind)")
            #expect(session.boundBytesSinceClear > 0)
            // 70 rows of 20 kB: one flush past the limit.
            try write(session, registration, sequence: 2, rows: 70, valueSize: 20_000)
            #expect(!holdsValues(session))
            #expect(session.boundBytesSinceClear == 0)
        }
    }

    @Test func flushesUnderTheLimitAddUpToIt() throws {
        try withSession { session, registration in
            // 600 kB each: the second flush passes 1 MiB in all.
            try write(session, registration, sequence: 1, rows: 30, valueSize: 20_000)
            #expect(holdsValues(session))
            try write(session, registration, sequence: 2, rows: 30, valueSize: 20_000)
            #expect(!holdsValues(session))
            #expect(session.boundBytesSinceClear == 0)
        }
    }
}
