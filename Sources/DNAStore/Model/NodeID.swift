/// A node's generational identity: a new one on every start, so a restarted process is a
/// new member and can never be confused with the one that ran before it.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The identity as text (32 hex digits when made by ``random()``).
    public var rawValue: String

    /// The identity `rawValue`, as the store keeps it.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A fresh random identity (128 bits, hex).
    public static func random() -> NodeID {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return NodeID(rawValue: hex(high) + hex(low))
    }

    /// The raw value.
    public var description: String { rawValue }
}

/// Where a node is in its life.
public enum NodeState: String, Sendable, Codable, CaseIterable {
    /// Registered, not yet serving.
    case joining
    /// Serving.
    case up
    /// Serving the activations it has, taking no new ones.
    case draining
    /// Gone on purpose; its names may be taken at once.
    case left
}

/// A row of the node table, as the store sees it now.
public struct NodeRecord: Sendable, Equatable {
    /// The node's identity.
    public var id: NodeID
    /// The cluster the node joined.
    public var cluster: String
    /// Where other nodes reach the node (`host:port`; `local` for a node without a listener).
    public var address: String
    /// Where the node is in its life.
    public var state: NodeState
    /// Milliseconds since the node's last heartbeat, by the store's clock.
    public var heartbeatAgeMilliseconds: Int64
    /// Activations the node reported with its last heartbeat.
    public var activations: Int64
    /// The node's own failure timeout, as it recorded it when it joined: it stops serving
    /// before this, and is judged dead after it, whatever the judge's own setting.
    public var failureTimeoutMilliseconds: Int64
    /// The node's labels (a role, a zone: `Node.Configuration.labels`), for placement and
    /// rebalancing.
    public var labels: [String]
    /// A rebalancing round was asked of the node (`dna rebalance`) and it has not made it yet.
    public var rebalanceRequested: Bool
    /// A mark the store changes with every heartbeat of the node: compare it, do not read it
    /// as a time. A node that sees it unchanged for a failure timeout by its own clock
    /// knows the node made no heartbeat meanwhile, whatever the store's clock did (see
    /// the node's `SilenceWatch`).
    public var heartbeatStamp: Int64

    /// A node row as an engine read it.
    public init(
        id: NodeID, cluster: String, address: String, state: NodeState,
        heartbeatAgeMilliseconds: Int64, activations: Int64, failureTimeoutMilliseconds: Int64,
        labels: [String] = [], rebalanceRequested: Bool = false, heartbeatStamp: Int64 = 0
    ) {
        self.heartbeatStamp = heartbeatStamp
        self.labels = labels
        self.rebalanceRequested = rebalanceRequested
        self.id = id
        self.cluster = cluster
        self.address = address
        self.state = state
        self.heartbeatAgeMilliseconds = heartbeatAgeMilliseconds
        self.activations = activations
        self.failureTimeoutMilliseconds = failureTimeoutMilliseconds
    }

    /// Labels as the stores keep them: one text, comma-separated (labels are checked to
    /// hold no comma).
    public static func encodeLabels(_ labels: [String]) -> String { labels.joined(separator: ",") }

    /// Labels from their stored text (``encodeLabels(_:)``); empty text is no labels.
    public static func decodeLabels(_ text: String) -> [String] {
        text.split(separator: ",").map(String.init)
    }

    /// Checks a label: 1 to 64 bytes of letters, digits and `-_.:=/`.
    public static func validateLabel(_ label: String) throws(StoreError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:=/")
        guard !label.isEmpty, label.utf8.count <= 64, label.allSatisfy({ allowed.contains($0) }) else {
            throw StoreError(.invalidArgument, "a node label is 1 to 64 letters, digits or '-_.:=/', got '\(label)'")
        }
    }

    /// Whether the node counts as alive: not `left`, and its last heartbeat is younger than
    /// its own failure timeout (by the store's clock).
    public var isAlive: Bool {
        state != .left && heartbeatAgeMilliseconds < failureTimeoutMilliseconds
    }
}

extension Duration {
    /// This duration in whole milliseconds (truncated toward zero).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
