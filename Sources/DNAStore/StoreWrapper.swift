/// A store that wraps another — to count, trace, delay or refuse some operations — and
/// forwards everything it does not implement itself to ``wrapped``.
///
/// ```swift
/// final class CountingStore: StoreWrapper {
///     let wrapped: any ActorStore
///     let commits = Atomic<Int>(0)
///     init(_ wrapped: any ActorStore) { self.wrapped = wrapped }
///
///     func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
///         commits.add(1, ordering: .relaxed)
///         wrapped.commit(batch, completion: completion)
///     }
/// }
/// ```
///
/// Three things to watch, all from how protocol extensions work:
/// - An operation is replaced only by a method of exactly the requirement's signature; one
///   that differs slightly (a label, `throws` instead of `throws(StoreError)`) is a new
///   method, and the operation is still forwarded — the compiler does not warn.
/// - Make the wrapper `final`: a subclass's override of an operation the wrapper itself
///   does not implement is never called (the forwarding default is what the protocol uses).
/// - A wrapper the node owns is run and closed through `run()`, which forwards to
///   ``wrapped``: cleanup of the wrapper's own goes into a `run()` of its own that calls
///   the wrapped one's, not into a `close()` alone.
public protocol StoreWrapper: ActorStore {
    /// The store every operation not implemented here goes to.
    var wrapped: any ActorStore { get }
}

extension StoreWrapper {
    /// Forwards to ``wrapped``.
    public func open() async throws(StoreError) { try await wrapped.open() }
    /// Forwards to ``wrapped``.
    public func run() async throws(StoreError) { try await wrapped.run() }
    /// Forwards to ``wrapped``.
    public func close() async { await wrapped.close() }

    /// Forwards to ``wrapped``.
    public func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) async throws(StoreError) {
        try await wrapped.join(node: node, cluster: cluster, address: address, failureTimeout: failureTimeout, labels: labels)
    }
    /// Forwards to ``wrapped``.
    public func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError) {
        try await wrapped.heartbeat(node: node, state: state, activations: activations)
    }
    /// Forwards to ``wrapped``.
    public func requestDrain(node: NodeID) async throws(StoreError) { try await wrapped.requestDrain(node: node) }
    /// Forwards to ``wrapped``.
    public func requestRebalance(cluster: String) async throws(StoreError) -> Int { try await wrapped.requestRebalance(cluster: cluster) }
    /// Forwards to ``wrapped``.
    public func rebalanceDone(node: NodeID) async throws(StoreError) { try await wrapped.rebalanceDone(node: node) }
    /// Forwards to ``wrapped``.
    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] { try await wrapped.nodes(cluster: cluster) }
    /// Forwards to ``wrapped``.
    public func forgetNodes(cluster: String, goneFor retention: Duration) async throws(StoreError) -> Int {
        try await wrapped.forgetNodes(cluster: cluster, goneFor: retention)
    }
    /// Forwards to ``wrapped``.
    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) {
        try await wrapped.evictOtherNodes(cluster: cluster, keeping: node)
    }

    /// Forwards to ``wrapped``.
    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome { try await wrapped.activate(request) }
    /// Forwards to ``wrapped``.
    public func release(_ registration: Registration) async throws(StoreError) { try await wrapped.release(registration) }
    /// Forwards to ``wrapped``.
    public func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) async throws(StoreError) {
        try await wrapped.handOver(registration, to: target, transientState: transientState)
    }
    /// Forwards to ``wrapped``.
    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] {
        try await wrapped.registrations(kind: kind, limit: limit)
    }
    /// Forwards to ``wrapped``.
    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        wrapped.commit(batch, completion: completion)
    }

    /// Forwards to ``wrapped``.
    public func dueAlarms(before: Int64, limit: Int) async throws(StoreError) -> [DueAlarm] {
        try await wrapped.dueAlarms(before: before, limit: limit)
    }

    /// Forwards to ``wrapped``.
    public func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) async throws(StoreError) {
        try await wrapped.createStream(stream, partitions: partitions, retention: retention)
    }
    /// Forwards to ``wrapped``.
    public func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        try await wrapped.append(records, to: stream, producer: producer)
    }
    /// Forwards to ``wrapped``.
    public func readStream(
        _ stream: StreamName, partition: Int, from sequence: Int64, limit: Int
    ) async throws(StoreError)
        -> [StreamRecord]
    {
        try await wrapped.readStream(stream, partition: partition, from: sequence, limit: limit)
    }
    /// Forwards to ``wrapped``.
    public func reshard(_ stream: StreamName, _ operation: StreamReshard) async throws(StoreError) -> [Int] {
        try await wrapped.reshard(stream, operation)
    }
    /// Forwards to ``wrapped``.
    public func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64) async throws(StoreError) {
        try await wrapped.commitProgress(consumer: consumer, stream: stream, partition: partition, next: next)
    }
    /// Forwards to ``wrapped``.
    public func registerConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try await wrapped.registerConsumer(consumer, of: stream)
    }
    /// Forwards to ``wrapped``.
    public func forgetConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try await wrapped.forgetConsumer(consumer, of: stream)
    }
    /// Forwards to ``wrapped``.
    public func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) async throws(StoreError) -> Int {
        try await wrapped.resumeConsumer(consumer, of: stream, partition: partition)
    }
    /// Forwards to ``wrapped``.
    public func trimStreams() async throws(StoreError) -> Int { try await wrapped.trimStreams() }
    /// Forwards to ``wrapped``.
    public func streamStatus(_ stream: StreamName) async throws(StoreError) -> StreamStatus { try await wrapped.streamStatus(stream) }
}
