import DNAPostgres
import DNAStore
import DNATesting
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one PostgreSQL server of this test process, started on first use (tests get a
/// fresh database each) and killed with its directory when the process exits. Servers
/// that earlier runs left behind are removed when it starts.
enum PostgresTestServer {
    /// Whether PostgreSQL tests can run; says so loudly, once, when they cannot.
    static let isAvailable: Bool = {
        let available = LocalPostgresServer.isAvailable
        if !available {
            print(
                """

                ****************************************************************
                SKIPPED: no PostgreSQL (no /usr/lib/postgresql/*/bin/initdb and
                no DNA_POSTGRES_URL): the PostgreSQL store tests did not run.
                ****************************************************************

                """)
        }
        return available
    }()

    /// Servers to kill at exit (the shared one and any a test started for itself).
    private static let started = Mutex<[LocalPostgresServer]>([])

    /// Tests may run without durability: nothing here survives the process anyway.
    static let testSettings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]

    private static let shared = Task<LocalPostgresServer, any Error> {
        try await startServer()
    }

    /// A server of its own for a test that stops it (register it so it dies at exit).
    static func startServer() async throws -> LocalPostgresServer {
        let server = try await LocalPostgresServer.start(settings: testSettings)
        let first = started.withLock { servers in
            servers.append(server)
            return servers.count == 1
        }
        if first { atexit { PostgresTestServer.terminateAll() } }
        return server
    }

    static func forget(_ server: LocalPostgresServer) {
        started.withLock { servers in servers.removeAll { $0 === server } }
    }

    private static func terminateAll() {
        for server in started.withLock({ $0 }) { server.terminate() }
    }

    /// The URL of a new empty database on the shared server.
    static func freshDatabase() async throws -> String {
        let server = try await shared.value
        return try await server.createDatabase(named: "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))
    }

    /// The shared server.
    static func server() async throws -> LocalPostgresServer { try await shared.value }
}
