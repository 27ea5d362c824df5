public import DNATransport
public import Logging
package import Metrics

extension Node {
    /// Which store a node uses: ``sqlite(path:synchronous:)`` (the default engine, embedded), an
    /// engine from another product (`DNAPostgres` adds `.postgres(url:)`), or a store made
    /// elsewhere (``custom(_:)``).
    public struct StoreChoice: Sendable {
        /// What the node gets: the store (not opened yet: the node runs it), whether the
        /// node made it (and so runs and closes it), and whether the node holds the database
        /// alone (then every other node recorded in it is certainly dead).
        public struct Made: Sendable {
            /// The store, not opened yet.
            public var store: any ActorStore
            /// Whether the node made the store, and so runs and closes it.
            public var ownedByNode: Bool
            /// Whether the node holds the database alone.
            public var exclusive: Bool

            /// What the node gets; see the properties.
            public init(store: any ActorStore, ownedByNode: Bool, exclusive: Bool) {
                self.store = store
                self.ownedByNode = ownedByNode
                self.exclusive = exclusive
            }
        }

        /// Makes the store for a node, without I/O; `clustered` says whether the node listens
        /// for others.
        let make: @Sendable (_ clustered: Bool) throws(StoreError) -> Made
        /// For messages: which store this is.
        public let description: String

        /// A choice for an engine defined elsewhere.
        public init(description: String, make: @escaping @Sendable (_ clustered: Bool) throws(StoreError) -> Made) {
            self.description = description
            self.make = make
        }

        /// The embedded SQLite file at `path` (created if missing). A single node (no
        /// ``Cluster/listen``) holds it exclusively; nodes of a cluster on one machine
        /// share it (a local development cluster: SQLite serialises their transactions and
        /// the store's clock is the one machine's clock, so every guarantee holds).
        /// `synchronous`: what an acknowledged write survives (see
        /// `SQLiteStore.Configuration.synchronous`; `.normal`: a crash of the process, not
        /// a power loss).
        public static func sqlite(path: String, synchronous: SQLiteStore.Configuration.Synchronous = .normal) -> StoreChoice {
            StoreChoice(description: "sqlite:\(path)") { clustered throws(StoreError) in
                var configuration = SQLiteStore.Configuration(path: path)
                configuration.synchronous = synchronous
                if clustered { configuration.sharing = .shared }
                return Made(
                    store: SQLiteStore(configuration: configuration), ownedByNode: true,
                    exclusive: configuration.sharing == .exclusive)
            }
        }

        /// The embedded SQLite store with every setting spelled out.
        public static func sqlite(_ configuration: SQLiteStore.Configuration) -> StoreChoice {
            StoreChoice(description: "sqlite:\(configuration.path)") { _ throws(StoreError) in
                Made(
                    store: SQLiteStore(configuration: configuration), ownedByNode: true,
                    exclusive: configuration.sharing == .exclusive)
            }
        }

        /// A store made elsewhere (for example an in-memory store in unit tests, or one
        /// several nodes of a test share): the node opens it when it starts (opening a store
        /// that is open already does nothing) but neither runs its background work nor
        /// closes it — that is up to whoever made it.
        public static func custom(_ store: any ActorStore) -> StoreChoice {
            StoreChoice(description: "custom \(type(of: store))") { _ in
                Made(store: store, ownedByNode: false, exclusive: false)
            }
        }
    }

    /// How a node runs. Every setting has a documented default.
    public struct Configuration: Sendable {
        /// The store. No default: name the file or the store.
        public var store: StoreChoice
        /// The namespace of references made without one. Default `"default"`.
        public var namespace: String = "default"
        /// The cluster this node joins, and how it talks to the other nodes; `nil` (the
        /// default): a node on its own, with no transport, in the cluster named `"local"`.
        public var cluster: Cluster? = nil
        /// The most messages one batch takes from a mailbox before committing. Default 256,
        /// chosen by `dna-bench` (see the README): larger batches gain little throughput
        /// and hold calls longer.
        public var maxBatch: Int = 256
        /// How many batches of one activation may be on their way to the store at once, so
        /// the actor handles the next batch while earlier ones commit. Default 16, chosen by
        /// `dna-bench`: the store commits what is queued as one group, and with 4 the actor
        /// often waited for a whole group to finish before it could hand over the next
        /// batch, leaving the store idle meanwhile.
        public var commitPipelineDepth: Int = 16
        /// The most messages a mailbox holds; a send beyond that fails with
        /// ``DNAError/Code/mailboxFull``. Default 10,000,000.
        public var mailboxCapacity: Int = 10_000_000
        /// How long an activation may sit idle before it is passivated (its memory freed; its
        /// data stays in the store). Default 5 minutes.
        public var idleTimeout: Duration = .seconds(300)
        /// How long a failing commit is retried before the activation goes back to its last
        /// durable state and its held callers get ``DNAError/Code/commitFailed``. Default 10 s.
        public var commitTimeout: Duration = .seconds(10)
        /// How often the node writes its heartbeat. Default 1 s.
        public var heartbeatInterval: Duration = .seconds(1)
        /// How long after a node's last heartbeat (by the store's clock) its names may be
        /// taken over. Default 5 s. A node that has not written a heartbeat for 80% of this
        /// time stops serving its activations until it writes one again (its lease), so a
        /// paused or partitioned node never answers for a name another node may hold.
        public var failureTimeout: Duration = .seconds(5)
        /// How long the membership row of a node that is gone (left, or silent past its
        /// failure timeout) is kept before a live node deletes it; so restarts do not make
        /// the table grow. Default 10 minutes.
        public var goneNodeRetention: Duration = .seconds(600)
        /// How often the node reads the alarms due soon from the store (it reads one
        /// interval ahead and fires each on time). Default 500 ms.
        public var alarmPollInterval: Duration = .milliseconds(500)
        /// The node's logger.
        public var logger: Logger = Logger(label: "dna.node")
        /// Where the node reads the time and waits: heartbeats, the lease, commit retries and
        /// deadlines, idle passivation, timers. Default `SystemClock`; tests use
        /// `DNATesting.TestClock`.
        public var clock: any DNAClock = SystemClock()
        /// Set by the simulation, which runs real nodes over its own network and scheduler.
        package var simulated: SimulatedEnvironment?

        /// A configuration with `store` and every other setting at its default.
        public init(store: StoreChoice) { self.store = store }

        func validate() throws(DNAError) {
            guard maxBatch >= 1 else { throw DNAError(.invalidArgument, "maxBatch must be at least 1") }
            guard commitPipelineDepth >= 1 else { throw DNAError(.invalidArgument, "commitPipelineDepth must be at least 1") }
            guard mailboxCapacity >= 1 else { throw DNAError(.invalidArgument, "mailboxCapacity must be at least 1") }
            guard failureTimeout > heartbeatInterval * 2 else {
                throw DNAError(.invalidArgument, "failureTimeout must be more than twice the heartbeatInterval")
            }
            do throws(StoreError) { try ActorID.validateSegment(namespace, what: "namespace") } catch {
                throw DNAError(.invalidName, error.message, underlying: error)
            }
            guard alarmPollInterval >= .milliseconds(10) else {
                throw DNAError(.invalidArgument, "alarmPollInterval must be at least 10 ms")
            }
            guard maxHops >= 1, maxHops <= 16 else { throw DNAError(.invalidArgument, "maxHops must be 1 to 16") }
            if let cluster {
                guard cluster.secret.count >= 16 else {
                    throw DNAError(.invalidArgument, "the cluster secret must be at least 16 bytes (it has \(cluster.secret.count))")
                }
            }
            if case .pinned(let label) = placement { try Self.validateLabel(label) }
            for label in labels { try Self.validateLabel(label) }
            for label in rebalancing.excludedLabels { try Self.validateLabel(label) }
            try rebalancing.validate()
        }

        static func validateLabel(_ label: String) throws(DNAError) {
            do throws(StoreError) { try NodeRecord.validateLabel(label) } catch {
                throw DNAError(.invalidArgument, error.message, underlying: error)
            }
        }
    }
}

extension Node {
    /// Where an actor that is active nowhere gets activated.
    public enum Placement: Sendable, Hashable, CustomStringConvertible {
        /// On the node that receives its first message, as the original DNA does: no extra
        /// hop for an actor mostly used from one node.
        case firstReceiver
        /// On the live node chosen by the actor's name (rendezvous hashing over the nodes
        /// in state `up`), so names spread evenly whoever sends first. Such actors live
        /// where the hash puts them: they are not migrated or rebalanced.
        case consistentHash
        /// On the less loaded of two live nodes picked at random (the power of two
        /// choices), by the activation counts of their last heartbeats; the node picked
        /// activates it even if its count has changed since.
        case leastLoaded
        /// Only on live nodes carrying `label` (``Cluster/labels``): the receiving
        /// node if it carries it, otherwise one of those chosen by the actor's name. With
        /// no such node live, sends fail with ``DNAError/Code/noEligibleNode``. Rebalancing
        /// leaves these actors in place; draining moves them to another node with the label.
        case pinned(label: String)

        /// Its name in logs and errors, for example `least-loaded` or `pinned(zone-a)`.
        public var description: String {
            switch self {
            case .firstReceiver: "first-receiver"
            case .consistentHash: "consistent-hash"
            case .leastLoaded: "least-loaded"
            case .pinned(let label): "pinned(\(label))"
            }
        }

        /// Whether actors placed so may be moved by migration and draining.
        var allowsMoves: Bool { self != .consistentHash }
        /// Whether rebalancing rounds move actors placed so (pinned ones stay on their label).
        var isRebalanced: Bool { self == .firstReceiver || self == .leastLoaded }
    }

    /// How a node takes part in rebalancing: every ``interval`` (and soon after a node
    /// joins, or when `dna rebalance` asks), it reads the live nodes' activation counts,
    /// plans a round with ``RebalancePlanner`` — the same plan on every node — and moves
    /// away the activations the plan takes from it. Only movable actors placed by
    /// ``Placement/firstReceiver`` or ``Placement/leastLoaded`` move; the others count
    /// in their node's load.
    public struct Rebalancing: Sendable {
        /// Whether the node rebalances on its own (`dna rebalance` works either way).
        /// Default `true`.
        public var enabled = true
        /// How often a node looks at the balance. Default 5 s.
        public var interval: Duration = .seconds(5)
        /// A round runs only when a node's load is off its fair share by more than this
        /// fraction (``RebalancePlanner/maxDeviation(_:)``), so small drifts move nothing;
        /// a round that runs evens the loads out fully. Default 0.1.
        public var tolerance = 0.1
        /// At most this much moves per round, over the cluster. Default 500 moves and a
        /// quarter of all activations.
        public var limits = RebalancePlanner.Limits()
        /// Nodes carrying any of these labels neither give nor take activations. Default none.
        public var excludedLabels: Set<String> = []

        /// Every setting at its default.
        public init() {}

        func validate() throws(DNAError) {
            guard interval >= .milliseconds(10) else { throw DNAError(.invalidArgument, "rebalancing.interval must be at least 10 ms") }
            guard tolerance >= 0, tolerance.isFinite else { throw DNAError(.invalidArgument, "rebalancing.tolerance must be 0 or more") }
            guard limits.maxMoves >= 1, limits.maxFraction > 0, limits.maxFraction <= 1 else {
                throw DNAError(.invalidArgument, "rebalancing.limits must allow a move: maxMoves ≥ 1, maxFraction in (0, 1]")
            }
        }
    }
}

extension Node {
    /// What the simulation gives a real node in place of the process's: its id, the
    /// executor every task of the node runs on (one thread, in an order the simulation
    /// chooses), and its links to the other nodes (made with the node's sequencer, which
    /// numbers requests as they are queued, as ``ClusterTransport`` does).
    package struct SimulatedEnvironment: Sendable {
        package var nodeID: NodeID
        package var executor: any TaskExecutor
        package var makeTransport: @Sendable (any ClusterTransportDelegate, RequestSequencer) -> any NodeTransport
        /// Where the node's metrics go (the simulation counts each node's apart).
        package var metrics: (any MetricsFactory)?
        /// The simulation itself, for the actors it defines (a stage's failing sink).
        package var harness: (any AnyObject & Sendable)?
        /// How often the node applies streams' retention (a minute in a process).
        package var retentionInterval: Duration = .seconds(60)

        package init(
            nodeID: NodeID, executor: any TaskExecutor, metrics: (any MetricsFactory)? = nil,
            makeTransport: @escaping @Sendable (any ClusterTransportDelegate, RequestSequencer) -> any NodeTransport
        ) {
            self.nodeID = nodeID
            self.executor = executor
            self.metrics = metrics
            self.makeTransport = makeTransport
        }
    }
}

extension Node {
    /// A node's membership of a cluster: its name, where the node listens, the secret every
    /// node proves it knows, and what only matters between nodes. `listen` and `secret`
    /// have no defaults, so a cluster without them does not type-check.
    public struct Cluster: Sendable {
        /// The cluster name; nodes of one cluster share a store and this name.
        public var name: String
        /// Where this node listens for other nodes of its cluster. Port 0 picks a free port.
        public var listen: PeerAddress
        /// The cluster's shared secret, at least 16 bytes. Nodes prove they know it in the
        /// handshake (HMAC-SHA256 challenge-response); it never crosses the network and is
        /// never logged.
        public var secret: [UInt8]
        /// The address other nodes reach this one at, `host:port`. Default `"local"`, which
        /// means the ``listen`` host and the port actually bound (set it when nodes must use
        /// another address, for example behind NAT or when listening on `0.0.0.0`).
        public var advertisedAddress: String = "local"
        /// TLS for the connections between nodes (the handshake with the secret runs inside
        /// it); mutual TLS from the `DNATLS` product:
        /// `try .mutualTLS(certificateChain:privateKey:trustRoots:)`.
        /// All nodes of a cluster, and its ``ClusterClient``s, must agree. Default `nil`: plain TCP.
        public var tls: (any TransportSecurity)? = nil
        /// A graceful shutdown (`shutdown()`, or SIGTERM under a `ServiceGroup`) first moves
        /// the node's activations to the other live nodes, as ``Node/drain()`` does, so that
        /// their callers see no error; without other live nodes it just stops. Default `true`.
        public var drainOnShutdown = true
        /// Where an actor that is active nowhere gets activated, unless its type says
        /// (``DurableActor/placement``). Default ``Placement/firstReceiver``.
        public var placement: Placement = .firstReceiver
        /// This node's labels — a role, a zone — recorded in its membership row: kinds
        /// pinned to a label (``Placement/pinned(label:)``) start only on nodes carrying
        /// it, and rebalancing can leave labelled nodes alone
        /// (``Rebalancing/excludedLabels``). 1 to 64 letters, digits or `-_.:=/` each.
        /// Default none.
        public var labels: [String] = []
        /// How the node takes part in moving activations between nodes to even out load.
        public var rebalancing = Rebalancing()
        /// The most network links a request may cross while nodes forward it to the actor's
        /// owner; then the caller gets ``DNAError/Code/routingFailed`` (retryable). Default 3,
        /// enough for caller → stale owner → new owner with one link to spare.
        public var maxHops: Int = Self.defaultMaxHops
        /// The largest frame the transport sends or accepts, in bytes: bounds the size of an
        /// encoded request or response. Default 16 MiB.
        public var maxFrameSize: Int = Self.defaultMaxFrameSize

        static let defaultMaxHops = 3
        static let defaultMaxFrameSize = 16 << 20

        /// A cluster named `name`, this node listening at `listen`, with the cluster's
        /// `secret`; every other setting at its default.
        public init(name: String, listen: PeerAddress, secret: [UInt8]) {
            self.name = name
            self.listen = listen
            self.secret = secret
        }
    }
}

// What the runtime reads of a configuration, with or without a cluster.
extension Node.Configuration {
    var clusterName: String { cluster?.name ?? "local" }
    var listen: PeerAddress? { cluster?.listen }
    var secret: [UInt8]? { cluster?.secret }
    var advertisedAddress: String { cluster?.advertisedAddress ?? "local" }
    var tls: (any TransportSecurity)? { cluster?.tls }
    var drainOnShutdown: Bool { cluster?.drainOnShutdown ?? false }
    var placement: Node.Placement { cluster?.placement ?? .firstReceiver }
    var labels: [String] { cluster?.labels ?? [] }
    var rebalancing: Node.Rebalancing { cluster?.rebalancing ?? Node.Rebalancing() }
    var maxHops: Int { cluster?.maxHops ?? Node.Cluster.defaultMaxHops }
    var maxFrameSize: Int { cluster?.maxFrameSize ?? Node.Cluster.defaultMaxFrameSize }
}
