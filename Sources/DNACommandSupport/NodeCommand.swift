package import ArgumentParser
import DNA
import DNAExamples
import DNAPostgres
import DNAPrometheus
import DNATLS
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `dna node`; `dna-bench` starts its cluster scenarios' nodes with it too, from its own
/// executable, so that a benchmark needs no other binary.
package struct NodeCommand: AsyncParsableCommand {
    package init() {}

    package static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node hosting the built-in example actors (kind 'kv'); the secret comes from DNA_CLUSTER_SECRET.")

    @OptionGroup var location: StoreLocation
    var store: String { location.store ?? "" }
    var cluster: String { location.cluster }

    @Option(help: "Where to listen for other nodes, HOST:PORT (port 0 picks one).")
    var listen: String

    @Option(help: "The address other nodes use to reach this one, HOST:PORT (default: the listen host and bound port).")
    var advertise: String?

    @Option(help: "Seconds between heartbeats.")
    var heartbeatInterval: Double = 1

    @Option(help: "Seconds without a heartbeat after which a node's actors may move.")
    var failureTimeout: Double = 5

    @Option(help: "Placement of new actors: first-receiver, consistent-hash, least-loaded or pinned:LABEL.")
    var placement: String = "first-receiver"

    @Option(name: .customLong("label"), help: "A label of this node (a role, a zone); repeat for more.")
    var labels: [String] = []

    @Option(help: "Rebalancing on its own: on or off (`dna rebalance` works either way).")
    var rebalance: String = "on"

    @Option(help: "Seconds between rebalancing checks.")
    var rebalanceInterval: Double = 5

    @Option(help: "Nodes carrying this label neither give nor take actors in rebalancing; repeat for more.")
    var rebalanceExclude: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Serve /metrics (Prometheus), /health/live and /health/ready on HOST:PORT.")
    var metrics: String?

    @Option(
        help: """
            With an sqlite store, what an acknowledged write survives: normal (a crash of the process; \
            the last commits may be lost if the machine crashes or loses power) or full (those too: an fsync per commit).
            """)
    var sqliteSynchronous: String = "normal"

    @OptionGroup var tls: TLSOptions

    package func run() async throws {
        try bootstrapLogging(logLevel)
        guard let synchronous = SQLiteStore.Configuration.Synchronous(rawValue: sqliteSynchronous.uppercased()) else {
            throw ValidationError("--sqlite-synchronous must be normal or full")
        }
        var endpointAddress: PeerAddress?
        let registry = PrometheusCollectorRegistry()
        if let metrics {
            guard let address = try? PeerAddress(parsing: metrics) else {
                throw ValidationError("--metrics must be HOST:PORT, got '\(metrics)'")
            }
            endpointAddress = address
            // Before the node is made: its metrics are created with it.
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        }
        var configuration = Node.Configuration(store: StoreArgument(store).choice(synchronous: synchronous))
        var membership = Node.Cluster(name: cluster, listen: try listenAddress(listen), secret: try clusterSecret())
        membership.tls = try tls.configuration()
        if let advertise { membership.advertisedAddress = advertise }
        configuration.heartbeatInterval = .milliseconds(Int64(heartbeatInterval * 1000))
        configuration.failureTimeout = .milliseconds(Int64(failureTimeout * 1000))
        switch placement {
        case "first-receiver": membership.placement = .firstReceiver
        case "consistent-hash": membership.placement = .consistentHash
        case "least-loaded": membership.placement = .leastLoaded
        case let text where text.hasPrefix("pinned:"): membership.placement = .pinned(label: String(text.dropFirst("pinned:".count)))
        default: throw ValidationError("--placement must be first-receiver, consistent-hash, least-loaded or pinned:LABEL")
        }
        membership.labels = labels
        switch rebalance {
        case "on": membership.rebalancing.enabled = true
        case "off": membership.rebalancing.enabled = false
        default: throw ValidationError("--rebalance must be on or off")
        }
        guard rebalanceInterval > 0 else { throw ValidationError("--rebalance-interval must be more than 0") }
        membership.rebalancing.interval = .milliseconds(Int64(rebalanceInterval * 1000))
        membership.rebalancing.excludedLabels = Set(rebalanceExclude)
        configuration.cluster = membership
        configuration.logger = Logger(label: "dna.node")
        let node = try Node(
            configuration: configuration, actors: [KVActor.self, CounterActor.self, AlarmActor.self, DeviceTotals.self, CityTotals.self])
        var services: [any Service] = [node]
        let endpoint = endpointAddress.map { MetricsEndpoint(node: node, address: $0, registry: registry) }
        if let endpoint { services.append(endpoint) }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: configuration.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                try await node.waitUntilReady()
                // Scripts and tests wait for this line (and the next, with --metrics).
                FileHandle.standardOutput.write(Data("node \(node.id) listening on \(node.advertisedAddress)\n".utf8))
                if let endpoint {
                    let port = try await endpoint.waitUntilBound()
                    FileHandle.standardOutput.write(Data("metrics on \(endpoint.address.host):\(port)\n".utf8))
                }
            }
            try await tasks.waitForAll()
        }
    }
}
