@testable import DNA
import DNAPostgres
import Foundation
import DNATesting
import Testing

/// The stores a cluster test runs on.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// One private PostgreSQL server for the whole test process (or `DNA_POSTGRES_URL`).
enum TestPostgres {
    private static let server = Task { () -> LocalPostgresServer? in
        guard LocalPostgresServer.isAvailable else {
            print("⚠️  SKIPPED: no PostgreSQL binaries and no DNA_POSTGRES_URL: PostgreSQL cluster tests do not run")
            return nil
        }
        return try await LocalPostgresServer.start()
    }

    /// A fresh database's URL, or `nil` when no PostgreSQL exists here.
    static func freshDatabase() async throws -> String? {
        guard let server = try await server.value else { return nil }
        return try await server.createDatabase(named: "dna_\(UUID().uuidString.prefix(8).lowercased())")
    }

    static func server() async throws -> LocalPostgresServer? { try await server.value }
}

/// Nodes of one cluster in this process, each with its own connection to one shared store
/// (wrapped so a test can block a node's heartbeats).
final class TestCluster {
    static let secret = Array("a-test-cluster-secret-of-32-bytes".utf8)

    let nodes: [Node]
    let stores: [GatedStore]
    private let directory: TemporaryDirectory
    /// Each node's `run()` (heartbeats, discovery, passivation), as a service would run it.
    private let running: [Task<Void, any Error>]

    private init(nodes: [Node], stores: [GatedStore], directory: TemporaryDirectory) {
        self.nodes = nodes
        self.stores = stores
        self.directory = directory
        running = nodes.map { node in Task { try await node.run() } }
    }

    /// Starts `count` nodes listening on 127.0.0.1, or returns `nil` (after a loud message)
    /// when the backend does not exist here.
    static func start(
        _ backend: Backend, count: Int = 3, placement: Node.Placement = .firstReceiver,
        heartbeatInterval: Duration = .milliseconds(250), failureTimeout: Duration = .seconds(2),
        maxFrameSize: Int = 16 << 20, actors: [any DurableActor.Type] = [Recorder.self], postgresURL: String? = nil,
        tls: (any TransportSecurity)? = nil, drainOnShutdown: Bool = false
    ) async throws -> TestCluster? {
        let directory = try TemporaryDirectory()
        var postgresURL = postgresURL
        if backend == .postgres, postgresURL == nil {
            guard let url = try await TestPostgres.freshDatabase() else { return nil }
            postgresURL = url
        }
        var nodes: [Node] = []
        var stores: [GatedStore] = []
        var runningStores: [Task<Void, any Error>] = []
        for _ in 0..<count {
            let inner: any ActorStore
            if let postgresURL {
                let postgres = try PostgresStore(configuration: .init(url: postgresURL))
                // A store given to a node is run by whoever made it.
                runningStores.append(Task { try await postgres.run() })
                inner = postgres
            } else {
                var sqlite = SQLiteStore.Configuration(path: directory.databasePath)
                sqlite.sharing = .shared
                inner = SQLiteStore(configuration: sqlite)
            }
            let store = GatedStore(inner)
            var configuration = Node.Configuration(store: .custom(store))
            configuration.cluster = "test"
            configuration.namespace = "test"
            configuration.listen = PeerAddress(host: "127.0.0.1", port: 0)
            configuration.secret = secret
            configuration.placement = placement
            configuration.heartbeatInterval = heartbeatInterval
            configuration.failureTimeout = failureTimeout
            configuration.maxFrameSize = maxFrameSize
            configuration.tls = tls
            configuration.drainOnShutdown = drainOnShutdown
            nodes.append(try Node(configuration: configuration, actors: actors))
            stores.append(store)
        }
        let cluster = TestCluster(nodes: nodes, stores: stores, directory: directory)
        for node in nodes { try await node.waitUntilReady() }
        // Every node learns of the others now rather than at its next heartbeat.
        for node in nodes { try await node.refreshMembers() }
        return cluster
    }

    func address(_ index: Int) throws -> PeerAddress { try PeerAddress(parsing: nodes[index].advertisedAddress) }

    func shutdown() async {
        for node in nodes { await node.shutdown() }
        for task in running {
            task.cancel()
            _ = await task.result
        }
        for store in stores { await store.close() }
    }
}

/// Calls `body` until it succeeds, retrying retryable errors until `deadline`; returns the
/// result and the errors seen.
func retrying<T>(
    for limit: Duration = .seconds(15), _ body: () async throws -> T
) async throws -> (value: T, errors: [DNAError]) {
    let deadline = ContinuousClock.now + limit
    var errors: [DNAError] = []
    while true {
        do {
            return (try await body(), errors)
        } catch let error as DNAError where error.isRetryable && ContinuousClock.now < deadline {
            errors.append(error)
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
