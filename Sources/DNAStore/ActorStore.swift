/// The one interface between the runtime and a database: node membership, name
/// registration with epochs, module data, and fenced atomic batch commits — the four parts
/// below, which an engine implements together.
///
/// Engines: ``SQLiteStore`` (embedded, the default), `PostgresStore` (clusters, in
/// `DNAPostgres`) and `InMemoryStore` (unit tests and the simulation, in `DNATesting`).
/// Every engine gives the same guarantees:
/// - ``OwnershipStore/activate(_:)`` applies `ClaimDecision` atomically: of concurrent
///   claimants exactly one wins a name at a given epoch.
/// - ``OwnershipStore/commit(_:completion:)`` checks, in the same transaction as the
///   writes, that the batch's registration (owner and epoch) is still the current one; if
///   not, nothing is written and the error is ``StoreError/Code/fenced``.
/// - Liveness is judged by the store's own clock.
///
/// A wrapper (metrics, tracing, faults) implements the parts it changes by forwarding to
/// the engine it wraps; code that needs one part takes only that part (a tool that reads
/// streams takes `any StreamStore`).
public typealias ActorStore = MembershipStore & OwnershipStore & AlarmStore & StreamStore

/// Opening and closing the database: what every part of a store shares.
public protocol StoreLifecycle: Sendable {
    /// Opens the database (connects, checks or creates the schema). No initialiser of a
    /// store does I/O: this does, once; concurrent and later calls wait for or repeat its
    /// outcome. Operations handed over before it wait for it or fail with
    /// ``StoreError/Code/closed``, as the engine documents.
    func open() async throws(StoreError)

    /// Opens the store and keeps its background work going (a connection pool, for
    /// example) until the task is cancelled; then closes it. A node runs the stores it
    /// makes this way, in its own `run()`.
    func run() async throws(StoreError)

    /// Flushes, stops background work and closes the database.
    func close() async
}

extension StoreLifecycle {
    /// Opens, then waits until the task is cancelled, then closes: for engines whose
    /// background work runs on threads of their own (or that have none).
    public func run() async throws(StoreError) {
        try await open()
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        await close()
    }
}

/// Nodes of a cluster: joining, heartbeats judged by the store's clock, drains and
/// rebalancing rounds asked by an operator, and forgetting the nodes long gone.
public protocol MembershipStore: StoreLifecycle {
    /// Adds a node row in state `joining` with a heartbeat at the store's `now`, and the
    /// node's failure timeout (others judge it dead by that, not by their own) and its
    /// labels (see ``NodeRecord/labels``).
    func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) async throws(StoreError)
    /// Records a heartbeat (store clock), the node's state and its number of activations.
    /// Throws ``StoreError/Code/fenced`` if the node's row says `left` or is gone: a node
    /// declared gone must not come back under the same identity.
    func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError)
    /// Asks the node to drain (`dna drain`): its row goes from `up` to `draining`, which its
    /// heartbeats keep (a draining node never reports `up` again); the node sees it at its
    /// next membership read, drains and leaves.
    ///
    /// - Throws: ``StoreError/Code/invalidArgument`` if the node is not `up`.
    func requestDrain(node: NodeID) async throws(StoreError)
    /// Asks every `up` node of the cluster for a rebalancing round now (`dna rebalance`):
    /// each sees ``NodeRecord/rebalanceRequested`` at its next membership read. Returns how
    /// many nodes were asked.
    func requestRebalance(cluster: String) async throws(StoreError) -> Int
    /// The node made the round asked of it: clears its ``NodeRecord/rebalanceRequested``.
    func rebalanceDone(node: NodeID) async throws(StoreError)
    /// The nodes of a cluster, with heartbeat ages by the store's clock.
    func nodes(cluster: String) async throws(StoreError) -> [NodeRecord]
    /// Deletes the rows of the cluster's nodes that have been gone — `left`, or silent past
    /// their own failure timeout — for longer than `retention` (by the store's clock), so
    /// the table does not grow with every restart. Returns how many it deleted. Names they
    /// still own are taken over as those of any dead node.
    func forgetNodes(cluster: String, goneFor retention: Duration) async throws(StoreError) -> Int
    /// Marks every other node of the cluster `left` and releases their names: used by an
    /// embedded node that holds the database exclusively, so others are certainly dead.
    func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError)

}

/// Names and their data: claims at epochs, hand-overs, releases, and batches committed
/// atomically and fenced.
public protocol OwnershipStore: StoreLifecycle {
    /// Claims the name for `request.node` (see `ClaimDecision`) and, when granted,
    /// returns the actor's stored module data.
    func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome
    /// Gives the name up if `registration` still holds it, so any node may claim it at once.
    func release(_ registration: Registration) async throws(StoreError)
    /// Hands the name from `registration`'s owner to `target` in one step, at the next
    /// epoch (so the old activation is fenced), if `registration` still holds it; the
    /// target's next claim is granted (a name owned by the claimant itself is). Commits of
    /// the name still under way are answered first. `transientState`, if any, is kept in
    /// the same transaction as a row of ``ModuleRow/handOverModule`` (empty key), which the
    /// target's activation reads and deletes.
    ///
    /// - Throws: ``StoreError/Code/fenced`` if `registration` no longer holds the name;
    ///   ``StoreError/Code/outcomeUnknown`` if the store's answer was lost once the hand-over
    ///   was sent (the name may be the target's).
    func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) async throws(StoreError)
    /// Registered names, optionally of one kind (`dna status --actors`).
    func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord]

    /// Commits a batch atomically and fenced; calls `completion` once, on any thread.
    func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void)

}

extension OwnershipStore {
    /// Commits a batch atomically and fenced (see ``commit(_:completion:)``).
    public func commit(_ batch: CommitBatch) async throws(StoreError) {
        let result: Result<Void, StoreError> = await withUnsafeContinuation { continuation in
            commit(batch) { continuation.resume(returning: $0) }
        }
        try result.get()
    }
}

/// Alarms: set and cancelled in an actor's commits (``CommitBatch``), found here when due.
public protocol AlarmStore: StoreLifecycle {
    /// Alarms due at or before `before` (ms since 1970), the earliest first, at most
    /// `limit`, with the live owner of each actor's name: read through an index on the due
    /// time, not by visiting actors.
    func dueAlarms(before: Int64, limit: Int) async throws(StoreError) -> [DueAlarm]
}

/// Streams: partitioned logs with retention, appends with producers, consumers'
/// checkpoints, splits and merges.
public protocol StreamStore: StoreLifecycle {
    /// Creates a stream of `partitions` partitions (1 to 1,024), each a range of the
    /// key-hash space.
    ///
    /// - Throws: ``StoreError/Code/invalidArgument`` if it exists already or the count is out of range.
    func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) async throws(StoreError)
    /// Appends `records` atomically (all or none), each to the open partition its key
    /// hashes to or the one it names; with a `producer`, records it appended before are not
    /// stored again (``StreamProducer``).
    ///
    /// - Throws: ``StoreError/Code/notFound`` for a missing stream or partition,
    ///   ``StoreError/Code/invalidArgument`` for a record over the size limits, a closed
    ///   partition named, or a bad producer; ``StoreError/Code/outcomeUnknown`` if the
    ///   store's answer was lost once the append was sent: the records may be stored, and
    ///   a retry stores them once only with the same `producer` and sequences.
    func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    /// Up to `limit` records of a partition from `sequence` on, in order.
    ///
    /// - Throws: ``StoreError/Code/notFound``; ``StoreError/Code/invalidArgument`` for a
    ///   sequence past the partition's end (its next sequence is the end: reading there
    ///   returns nothing) or before what retention kept.
    func readStream(_ stream: StreamName, partition: Int, from sequence: Int64, limit: Int) async throws(StoreError) -> [StreamRecord]
    /// Splits an open partition in two halves of its key range, or merges two open ones
    /// with adjacent ranges into one (`StreamReshardRule`), in one transaction: the
    /// parents close where they stand, the children open empty with the parents as their
    /// parents. Returns the children's ids.
    ///
    /// - Throws: ``StoreError/Code/notFound``; ``StoreError/Code/invalidArgument`` for a
    ///   partition closed already, one holding a single key hash, or ranges not adjacent.
    func reshard(_ stream: StreamName, _ operation: StreamReshard) async throws(StoreError) -> [Int]
    /// Records that `consumer` has read `partition` up to `next` (exclusive): its
    /// checkpoint, which retention respects (``StreamRetention/dropUnconsumed``) and
    /// ``streamStatus(_:)`` shows with its lag. Consumer stages write theirs in their own
    /// commits; this is for consumers outside DNA.
    ///
    /// - Throws: ``StoreError/Code/notFound``; ``StoreError/Code/invalidArgument`` for a
    ///   checkpoint past the partition's end or before its start, or an empty consumer name.
    func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64) async throws(StoreError)
    /// Registers `consumer` on `stream`: gives it a checkpoint at the start (the first
    /// record kept) of every partition it has none on, so retention keeps from then on
    /// every record it has not read. A split or merge gives every registered consumer a
    /// checkpoint on the new partitions in its own transaction. Returns how many it made
    /// (0 when the consumer had one everywhere already).
    ///
    /// - Throws: ``StoreError/Code/notFound`` for a missing stream;
    ///   ``StoreError/Code/invalidArgument`` for an empty consumer name.
    func registerConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int
    /// Forgets a consumer of a stream (one gone for good): its checkpoints no longer hold
    /// records back from retention (a stage still deployed registers again at its leader's
    /// next sync). Returns the partitions it had checkpoints on.
    ///
    /// - Throws: ``StoreError/Code/notFound`` for a missing stream.
    func forgetConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int
    /// Lets a consumer stage's parked partitions run again (all of them when `partition` is
    /// `nil`): its stage retries the records it parked on. Returns how many were parked.
    ///
    /// - Throws: ``StoreError/Code/notFound`` for a missing stream.
    func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) async throws(StoreError) -> Int
    /// Deletes, in every stream, the records its retention lets go; returns how many.
    func trimStreams() async throws(StoreError) -> Int
    /// The stream's partitions: state, key range, first and next sequence, bytes, parents.
    func streamStatus(_ stream: StreamName) async throws(StoreError) -> StreamStatus
}
