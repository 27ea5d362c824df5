import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The PostgreSQL server of a test process: started on first use, shared by its tests
/// (each gets a fresh database), and removed with its directory when the process exits.
/// With `DNA_POSTGRES_URL` set, that server instead.
///
/// ```swift
/// @Test(.enabled(if: TestPostgres.isAvailable))
/// func ordersSurviveARestart() async throws {
///     let url = try #require(try await TestPostgres.freshDatabase())
///     let node = Node(configuration: .init(store: .postgres(url: url)))
///     …
/// }
/// ```
///
/// Durability is off on it (`fsync`, `synchronous_commit`, `full_page_writes`): nothing
/// on it outlives the process. Benchmarks start a ``LocalPostgresServer`` of their own.
public enum TestPostgres {
    /// Whether PostgreSQL tests can run here; when they cannot, says so loudly, once.
    public static let isAvailable: Bool = {
        let available = LocalPostgresServer.isAvailable
        if !available {
            print(
                """

                ****************************************************************
                SKIPPED: no PostgreSQL (no /usr/lib/postgresql/*/bin/initdb and
                no \(LocalPostgresServer.urlVariable)): the PostgreSQL tests did not run.
                ****************************************************************

                """)
        }
        return available
    }()

    /// The settings of the servers it starts: no durability.
    public static let settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]

    /// The URL of a new empty database on the shared server; `nil` when PostgreSQL is not
    /// available here (``isAvailable``).
    public static func freshDatabase() async throws -> String? {
        guard isAvailable else { return nil }
        let server = try await shared.value
        return try await server.createDatabase(named: "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))
    }

    /// The shared server; `nil` when PostgreSQL is not available here.
    public static func server() async throws -> LocalPostgresServer? {
        guard isAvailable else { return nil }
        return try await shared.value
    }

    /// A server of its own, for a test that stops or pauses it; removed at exit unless
    /// the test ``forget(_:)``s it after stopping it.
    public static func startServer() async throws -> LocalPostgresServer {
        let server = try await LocalPostgresServer.start(settings: settings)
        let first = started.withLock { servers in
            servers.append(server)
            return servers.count == 1
        }
        if first { atexit { TestPostgres.terminateAll() } }
        return server
    }

    /// A server of ``startServer()`` the test stopped itself.
    public static func forget(_ server: LocalPostgresServer) {
        started.withLock { servers in servers.removeAll { $0 === server } }
    }

    private static let started = Mutex<[LocalPostgresServer]>([])

    private static let shared = Task<LocalPostgresServer, any Error> { try await startServer() }

    private static func terminateAll() {
        for server in started.withLock({ $0 }) { server.terminate() }
    }
}
