import Logging

extension Node {
    /// Which store a node uses.
    public enum StoreChoice: Sendable {
        /// The embedded SQLite file at `path` (created if missing), exclusive to this node.
        case sqlite(path: String)
        /// The embedded SQLite store with every setting spelled out.
        case sqliteConfiguration(SQLiteStore.Configuration)
        /// A store made elsewhere (for example an ``InMemoryStore`` in unit tests).
        case custom(any ActorStore)
    }

    /// How a node runs. Every setting has a documented default.
    public struct Configuration: Sendable {
        /// The store. No default: name the file or the store.
        public var store: StoreChoice
        /// The cluster name; nodes of one cluster share a store. Default `"local"`.
        public var cluster: String = "local"
        /// The namespace of references made without one. Default `"default"`.
        public var namespace: String = "default"
        /// The address other nodes reach this one at. Default `"local"` (single node).
        public var advertisedAddress: String = "local"
        /// The most messages one batch takes from a mailbox before committing. Default 256,
        /// chosen by `dna bench` (see the README): larger batches gain little throughput
        /// and hold calls longer.
        public var maxBatch: Int = 256
        /// How many batches of one activation may be on their way to the store at once, so
        /// the actor handles the next batch while earlier ones commit. Default 4.
        public var commitPipelineDepth: Int = 4
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
        /// taken over. Default 5 s.
        public var failureTimeout: Duration = .seconds(5)
        /// The node's logger.
        public var logger: Logger = Logger(label: "dna.node")

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
        }
    }
}
