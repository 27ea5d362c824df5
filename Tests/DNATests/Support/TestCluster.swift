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

/// Nodes of one cluster in this process, each with its own connection to one shared store
/// (wrapped so a test can block a node's heartbeats).
final class TestCluster {
    static let secret = Array("a-test-cluster-secret-of-32-bytes".utf8)

    private(set) var nodes: [Node]
    private(set) var stores: [GatedStore]
    /// Where the SQLite cluster's database is (read it with a store of its own once the
    /// nodes are down).
    let directory: TemporaryDirectory
    /// Each node's `run()` (heartbeats, discovery, passivation), as a service would run it.
    private var running: [Task<Void, any Error>]
    /// Makes the node of an index, as the cluster's first nodes were made.
    private let makeNode: (Int, (Int, inout Node.Configuration) -> Void) throws -> (Node, GatedStore)

    private init(
        nodes: [Node], stores: [GatedStore], directory: TemporaryDirectory,
        makeNode: @escaping (Int, (Int, inout Node.Configuration) -> Void) throws -> (Node, GatedStore)
    ) {
        self.nodes = nodes
        self.stores = stores
        self.directory = directory
        self.makeNode = makeNode
        running = nodes.map { node in Task { try await node.run() } }
    }

    /// Starts another node of the cluster (a join), configured like the first ones and
    /// then by `configure`; returns once it runs.
    @discardableResult
    func addNode(configure: (Int, inout Node.Configuration) -> Void = { _, _ in }) async throws -> Node {
        let (node, store) = try makeNode(nodes.count, configure)
        nodes.append(node)
        stores.append(store)
        running.append(Task { try await node.run() })
        try await node.waitUntilReady()
        return node
    }

    /// Starts `count` nodes listening on 127.0.0.1, or returns `nil` (after a loud message)
    /// when the backend does not exist here. With `sharedStore`, every node uses that store
    /// (and `backend` is not used).
    static func start(
        _ backend: Backend, count: Int = 3, placement: Node.Placement = .firstReceiver,
        heartbeatInterval: Duration = .milliseconds(250), failureTimeout: Duration = .seconds(2),
        maxFrameSize: Int = 16 << 20, actors: [any DurableActor.Type] = [Recorder.self], postgresURL: String? = nil,
        tls: (any TransportSecurity)? = nil, drainOnShutdown: Bool = false, sharedStore: (any ActorStore)? = nil,
        configure: (_ index: Int, _ configuration: inout Node.Configuration) -> Void = { _, _ in }
    ) async throws -> TestCluster? {
        let directory = try TemporaryDirectory()
        var postgresURL = postgresURL
        if backend == .postgres, postgresURL == nil {
            guard let url = try await TestPostgres.freshDatabase() else { return nil }
            postgresURL = url
        }
        var nodes: [Node] = []
        var stores: [GatedStore] = []
        let runningStores = Locked<[Task<Void, any Error>]>([])
        func makeNode(_ index: Int, _ configure: (Int, inout Node.Configuration) -> Void) throws -> (Node, GatedStore) {
            let inner: any ActorStore
            if let sharedStore {
                // One store object for every node (an in-memory one, whose clock the test moves).
                inner = sharedStore
            } else if let postgresURL {
                let postgres = try PostgresStore(configuration: .init(url: postgresURL))
                // A store given to a node is run by whoever made it.
                runningStores.withLock { $0.append(Task { try await postgres.run() }) }
                inner = postgres
            } else {
                var sqlite = SQLiteStore.Configuration(path: directory.databasePath)
                sqlite.sharing = .shared
                inner = SQLiteStore(configuration: sqlite)
            }
            let store = GatedStore(inner)
            var configuration = Node.Configuration(store: .custom(store))
            var cluster = Node.Cluster(name: "test", listen: PeerAddress(host: "127.0.0.1", port: 0), secret: secret)
            cluster.placement = placement
            cluster.maxFrameSize = maxFrameSize
            cluster.tls = tls
            cluster.drainOnShutdown = drainOnShutdown
            // Tests that check where actors are would see rounds move them.
            cluster.rebalancing.enabled = false
            configuration.cluster = cluster
            configuration.namespace = "test"
            configuration.heartbeatInterval = heartbeatInterval
            configuration.failureTimeout = failureTimeout
            configure(index, &configuration)
            return (try Node(configuration: configuration, actors: actors), store)
        }
        for index in 0..<count {
            let (node, store) = try makeNode(index, configure)
            nodes.append(node)
            stores.append(store)
        }
        let cluster = TestCluster(nodes: nodes, stores: stores, directory: directory, makeNode: makeNode)
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

/// Waits until `condition` holds, checking every 20 ms, for at most `limit`; whether it did.
func eventually(within limit: Duration = .seconds(20), _ condition: () throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while try !condition() {
        if ContinuousClock.now > deadline { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
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
