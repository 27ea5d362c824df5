import DNAStore
import Logging

// API SKETCH — the implementation lands in the pg-store branch. Signatures here are what
// the runtime and `dna` code against: keep them.

/// The PostgreSQL engine of ``ActorStore`` (postgres-nio), for clusters: several nodes
/// share one database. Same semantics as ``SQLiteStore``.
public final class PostgresStore: ActorStore {
    public struct Configuration: Sendable {
        /// Parses `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `postgresql://`).
        /// Throws ``StoreError/Code/invalidArgument`` if malformed.
        public init(url: String) throws(StoreError) { fatalError("unimplemented") }
        public var logger: Logger = Logger(label: "dna.store.postgres")
    }

    /// Connects, creates the schema if the database has none, and checks it is DNA's.
    public init(configuration: Configuration) async throws(StoreError) { fatalError("unimplemented") }

    public func join(node: NodeID, cluster: String, address: String) async throws(StoreError) { fatalError() }
    public func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError) { fatalError() }
    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] { fatalError() }
    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) { fatalError() }
    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome { fatalError() }
    public func release(_ registration: Registration) async throws(StoreError) { fatalError() }
    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] { fatalError() }
    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) { fatalError() }
    public func close() async { fatalError() }
}

/// A private PostgreSQL server in a temporary directory on a free port, for tests and
/// benchmarks (`initdb` + `pg_ctl` from `/usr/lib/postgresql/<v>/bin`; as root, run as the
/// `postgres` user). Or, when `DNA_POSTGRES_URL` is set, that server instead.
public final class LocalPostgresServer: Sendable {
    /// `postgres://…` of the server.
    public var url: String { fatalError() }
    /// Whether PostgreSQL binaries exist here (else tests skip loudly).
    public static var isAvailable: Bool { fatalError() }
    /// Starts a fresh server (or uses `DNA_POSTGRES_URL`).
    public static func start() async throws -> LocalPostgresServer { fatalError() }
    /// A new empty database on this server; returns its URL.
    public func createDatabase(named name: String) async throws -> String { fatalError() }
    /// Stops the server (fast shutdown) without deleting its data; ``resume()`` starts it again.
    public func pause() async throws { fatalError() }
    public func resume() async throws { fatalError() }
    /// Stops the server and removes its directory.
    public func stop() async { fatalError() }
}
