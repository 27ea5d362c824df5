import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    public import Darwin
#endif

/// The embedded store: one SQLite file in WAL mode. The default engine; nothing to set up.
///
/// One worker thread owns the connection and runs every operation. Operations that queue
/// up while a transaction runs are grouped into the next transaction (group commit), so
/// many actors committing at once cost one transaction, not one each.
public final class SQLiteStore: ActorStore {
    /// How an ``SQLiteStore`` opens its file.
    public struct Configuration: Sendable {
        /// SQLite's `synchronous` setting in WAL mode: what an acknowledged write (a commit
        /// the runtime reported durable) survives.
        public enum Synchronous: String, Sendable {
            /// An acknowledged write survives a crash or kill of the process (it is in the
            /// operating system's page cache, which writes it out), but not a crash of the
            /// operating system or a loss of power: then the last commits before it (those
            /// the next WAL fsync, at a checkpoint, had not written out yet) may be lost,
            /// although their callers were told they were done. The database stays
            /// consistent (never a torn transaction). SQLite's recommended setting for WAL.
            case normal = "NORMAL"
            /// An acknowledged write survives a crash of the operating system and a loss of
            /// power too: the WAL is fsynced before each commit is acknowledged (one fsync
            /// per transaction; concurrent batches share it through group commit).
            case full = "FULL"
        }

        /// Who may use the file at the same time.
        public enum Sharing: Sendable {
            /// One node process holds the file (checked with a file lock); any other node
            /// recorded in it is certainly dead, so its names are taken at once on start.
            case exclusive
            /// Several node processes on this machine share the file (a local cluster).
            case shared
        }

        /// The database file; created if missing.
        public var path: String
        /// What an acknowledged write survives. Default ``Synchronous/normal``: a crash of
        /// the process, not a crash of the machine or a power loss (the last commits may
        /// then be lost). Choose ``Synchronous/full`` where an acknowledged write must
        /// survive those too (`dna node --sqlite-synchronous full`).
        public var synchronous: Synchronous = .normal
        /// Default ``Sharing/exclusive``.
        public var sharing: Sharing = .exclusive
        /// How long one statement waits for another process's lock before failing with
        /// ``StoreError/Code/unavailable`` (the runtime then retries). Default 200 ms.
        public var busyTimeout: Duration = .milliseconds(200)
        /// The most storage operations grouped into one transaction. Default 50,000.
        public var maxOperationsPerTransaction = 50_000
        /// Checkpoint the WAL on a thread of its own after this many written rows, instead
        /// of inside a commit; `nil` leaves it to SQLite's default (inside the commit that
        /// fills 1,000 pages). Default 20,000.
        public var backgroundCheckpointRows: Int? = 20_000

        /// Settings for the file at `path`, the others at their defaults.
        public init(path: String) { self.path = path }
    }

    /// What the store was opened with.
    public let configuration: Configuration
    private let logger: Logger
    private let worker: SQLiteWorker
    private let opening = OpenOnce()
    /// The open file that holds the `flock`; -1 while none.
    private let lockFileDescriptor = Mutex<Int32>(-1)

    /// Makes the store; nothing is opened until ``open()`` (or a node's `run()`).
    /// Operations handed over before then wait for it.
    public init(configuration: Configuration, logger: Logger = Logger(label: "dna.store.sqlite")) {
        self.configuration = configuration
        self.logger = logger
        worker = SQLiteWorker(maxOperations: configuration.maxOperationsPerTransaction, logger: logger)
    }

    deinit {
        worker.stop()
        unlock()
    }

    /// Opens the file, checks it is a DNA database of a known version (creating the schema
    /// in a new file, migrating an older one) and starts the worker thread. Returns at once
    /// once open; concurrent callers wait for the first.
    ///
    /// - Throws: ``StoreError/Code/notADNADatabase`` for another application's database
    ///   or a file that is not a database, ``StoreError/Code/corrupt``,
    ///   ``StoreError/Code/schemaTooNew``, ``StoreError/Code/inUse`` when another process
    ///   holds the file in exclusive mode; ``StoreError/Code/closed`` after ``close()``.
    public func open() async throws(StoreError) {
        try await opening.run { () async throws(StoreError) in
            do throws(StoreError) {
                // Nodes opening a new file together can deadlock on switching it to WAL;
                // SQLite then answers "busy" at once, without waiting. Try again, within
                // the bound a node waits for another's schema work.
                let deadline = ContinuousClock.now + Self.openBusyTimeout
                while true {
                    do throws(StoreError) {
                        try self.openFile()
                        break
                    } catch  where SQLiteConnection.isBusy(error) && ContinuousClock.now < deadline {
                        try? await Task.sleep(for: .milliseconds(Int.random(in: 5...25)))
                    }
                }
            } catch {
                self.worker.failStart(error)
                throw error
            }
        }
    }

    /// How long opening waits for other nodes' work on the same file (schema creation or
    /// migration, the switch to WAL).
    static let openBusyTimeout: Duration = .seconds(10)

    private func openFile() throws(StoreError) {
        // The lock is taken on a file of its own beside the database: closing a descriptor
        // of the database file itself would drop SQLite's POSIX locks on it.
        let lockPath = configuration.path + "-lock"
        let descriptor = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw StoreError(.unavailable, "cannot open \(lockPath) (errno \(errno))")
        }
        let lockMode = configuration.sharing == .exclusive ? LOCK_EX : LOCK_SH
        if flock(descriptor, lockMode | LOCK_NB) != 0 {
            Glibc.close(descriptor)
            throw StoreError(
                .inUse,
                configuration.sharing == .exclusive
                    ? "\(configuration.path) is in use by another DNA node; use shared mode for several nodes on one file"
                    : "\(configuration.path) is held exclusively by another DNA node")
        }
        var opened = false
        defer { if !opened { Glibc.close(descriptor) } }
        let connection = try SQLiteConnection(path: configuration.path)
        // Nodes of a local cluster may open a new file together: while one creates (or
        // migrates) the schema, the others wait for it rather than fail.
        try SQLiteSchema.configure(connection, synchronous: configuration.synchronous, busyTimeout: Self.openBusyTimeout)
        try SQLiteSchema.prepare(connection, path: configuration.path)
        let session = try SQLiteSession(connection)
        var checkpointer: SQLiteCheckpointer?
        if let rows = configuration.backgroundCheckpointRows {
            try connection.execute("PRAGMA wal_autocheckpoint = 0")
            checkpointer = try SQLiteCheckpointer(path: configuration.path, threshold: rows)
        }
        try connection.execute("PRAGMA busy_timeout = \(configuration.busyTimeout.milliseconds)")
        lockFileDescriptor.withLock { $0 = descriptor }
        worker.start(session: session, checkpointer: checkpointer)
        opened = true
    }

    private func unlock() {
        lockFileDescriptor.withLock { descriptor in
            if descriptor >= 0 { Glibc.close(descriptor) }
            descriptor = -1
        }
    }

    private func perform<T: Sendable>(
        weight: Int = 1, _ body: @escaping (SQLiteSession) throws(StoreError) -> T
    ) async throws(StoreError) -> T {
        let result: Result<T, StoreError> = await withUnsafeContinuation { continuation in
            worker.submit(
                SQLiteWorker.Job(
                    weight: weight,
                    body: { session throws(StoreError) in
                        let value = try body(session)
                        return { continuation.resume(returning: .success(value)) }
                    },
                    fail: { continuation.resume(returning: .failure($0)) }))
        }
        return try result.get()
    }

    /// Adds the node in state `joining`
    /// (``MembershipStore/join(node:cluster:address:failureTimeout:labels:)``).
    public func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) async throws(StoreError) {
        try await perform { session throws(StoreError) in
            try session.join(node: node, cluster: cluster, address: address, failureTimeout: failureTimeout, labels: labels)
        }
    }

    /// Asks every `up` node of the cluster for a rebalancing round; returns how many were asked.
    public func requestRebalance(cluster: String) async throws(StoreError) -> Int {
        try await perform { session throws(StoreError) in try session.requestRebalance(cluster: cluster) }
    }

    /// Clears the node's ``NodeRecord/rebalanceRequested``.
    public func rebalanceDone(node: NodeID) async throws(StoreError) {
        try await perform { session throws(StoreError) in try session.rebalanceDone(node: node) }
    }

    /// Records a heartbeat by the store's clock, with the node's state and activations
    /// (``MembershipStore/heartbeat(node:state:activations:)``).
    public func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError) {
        try await perform { session throws(StoreError) in
            try session.heartbeat(node: node, state: state, activations: activations)
        }
    }

    /// Asks an `up` node to drain (``MembershipStore/requestDrain(node:)``).
    public func requestDrain(node: NodeID) async throws(StoreError) {
        try await perform { session throws(StoreError) in try session.requestDrain(node: node) }
    }

    /// The nodes of the cluster, by id, with heartbeat ages by the store's clock.
    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] {
        try await perform { session throws(StoreError) in try session.nodes(cluster: cluster) }
    }

    /// Deletes the rows of the cluster's nodes gone for longer than `retention`; returns how
    /// many (``MembershipStore/forgetNodes(cluster:goneFor:)``).
    public func forgetNodes(cluster: String, goneFor retention: Duration) async throws(StoreError) -> Int {
        try await perform { session throws(StoreError) in try session.forgetNodes(cluster: cluster, goneFor: retention) }
    }

    /// Marks every other node of the cluster `left` and releases their names.
    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) {
        try await perform { session throws(StoreError) in try session.evictOtherNodes(cluster: cluster, keeping: node) }
    }

    /// Claims the name for `request.node` (``OwnershipStore/activate(_:)``).
    ///
    /// - Throws: ``StoreError/Code/invalidName`` for a name that breaks the rules of ``ActorID``.
    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome {
        try request.actor.validate()
        return try await perform { session throws(StoreError) in try session.activate(request) }
    }

    /// Gives the name up if `registration` still holds it; otherwise does nothing.
    public func release(_ registration: Registration) async throws(StoreError) {
        try await perform { session throws(StoreError) in try session.release(registration) }
    }

    /// Hands the name to `target` at the next epoch, after the batches of the name queued before
    /// it (``OwnershipStore/handOver(_:to:transientState:)``).
    ///
    /// - Throws: ``StoreError/Code/fenced`` if `registration` no longer holds the name.
    public func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) async throws(StoreError) {
        try await perform { session throws(StoreError) in
            try session.handOver(registration, to: target, transientState: transientState)
        }
    }

    /// Creates a stream of `partitions` partitions (``StreamStore/createStream(_:partitions:retention:)``).
    ///
    /// - Throws: ``StoreError/Code/invalidName`` for a stream name that ``StreamName/validate()``
    ///   refuses; ``StoreError/Code/invalidArgument`` if the stream exists or a setting is out of range.
    public func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) async throws(StoreError) {
        try StreamRules.checkCreate(stream, partitions: partitions, retention: retention)
        try await perform { session throws(StoreError) in try session.createStream(stream, partitions: partitions, retention: retention) }
    }

    /// Appends `records` atomically (``StreamStore/append(_:to:producer:)``).
    public func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        try stream.validate()
        try StreamAppendRule.validate(producer)
        return try await perform(weight: max(1, records.count)) { session throws(StoreError) in
            try session.append(records, to: stream, producer: producer)
        }
    }

    /// Up to `limit` records (1 to 10,000) of a partition from `sequence` on, in order
    /// (``StreamStore/readStream(_:partition:from:limit:)``).
    public func readStream(
        _ stream: StreamName, partition: Int, from sequence: Int64, limit: Int
    ) async throws(StoreError)
        -> [StreamRecord]
    {
        try stream.validate()
        return try await perform { session throws(StoreError) in
            try session.readStream(stream, partition: partition, from: sequence, limit: limit)
        }
    }

    /// Records `consumer`'s checkpoint on a partition
    /// (``StreamStore/commitProgress(consumer:stream:partition:next:)``).
    public func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64) async throws(StoreError) {
        try stream.validate()
        try await perform { session throws(StoreError) in
            try session.commitProgress(consumer: consumer, stream: stream, partition: partition, next: next)
        }
    }

    /// Gives `consumer` a checkpoint at the start of every partition it has none on; returns
    /// how many it made (``StreamStore/registerConsumer(_:of:)``).
    public func registerConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { session throws(StoreError) in try session.registerConsumer(consumer, of: stream) }
    }

    /// Deletes `consumer`'s checkpoints on the stream; returns how many there were.
    public func forgetConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { session throws(StoreError) in try session.forgetConsumer(consumer, of: stream) }
    }

    /// Lets the consumer's parked partitions of the stream (or only `partition`) run again;
    /// returns how many were parked.
    public func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { session throws(StoreError) in try session.resumeConsumer(consumer, of: stream, partition: partition) }
    }

    /// Deletes, in every stream, the records its retention lets go, and forgets the producers
    /// made for one append older than ``StreamProducer/oneAppendRetention``; returns how many
    /// records it deleted.
    public func trimStreams() async throws(StoreError) -> Int {
        try await perform { session throws(StoreError) in try session.trimStreams() }
    }

    /// Splits or merges partitions; returns the children's ids (``StreamStore/reshard(_:_:)``).
    public func reshard(_ stream: StreamName, _ operation: StreamReshard) async throws(StoreError) -> [Int] {
        try stream.validate()
        return try await perform { session throws(StoreError) in try session.reshard(stream, operation) }
    }

    /// The stream's retention, partitions, consumers' checkpoints and parked partitions.
    public func streamStatus(_ stream: StreamName) async throws(StoreError) -> StreamStatus {
        try stream.validate()
        return try await perform { session throws(StoreError) in try session.streamStatus(stream) }
    }

    /// Alarms due at or before `before` (ms since 1970), the earliest first, at most `limit`
    /// (``AlarmStore/dueAlarms(before:limit:)``).
    public func dueAlarms(before: Int64, limit: Int) async throws(StoreError) -> [DueAlarm] {
        try await perform { session throws(StoreError) in try session.dueAlarms(before: before, limit: limit) }
    }

    /// Registered names, of one kind or all, ordered by namespace, kind and key; at most `limit`.
    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] {
        try await perform { session throws(StoreError) in try session.registrations(kind: kind, limit: limit) }
    }

    /// Commits the batch atomically and fenced (``OwnershipStore/commit(_:completion:)``), in one
    /// transaction with the other operations queued meanwhile; calls `completion` once. A batch
    /// that is fenced, or whose predecessor is missing, fails alone: the others go on.
    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        worker.submit(
            SQLiteWorker.Job(
                weight: batch.operations.count + 1 + batch.streams.appends.reduce(0) { $0 + $1.records.count },
                isCommit: true,
                body: { session throws(StoreError) in
                    do throws(StoreError) {
                        try session.commit(batch)
                    } catch  where error.code == .fenced || error.code == .predecessorMissing {
                        // Nothing was written for this batch; the others in the group go on.
                        return { completion(.failure(error)) }
                    }
                    return { completion(.success(())) }
                },
                fail: { completion(.failure($0)) }))
    }

    /// Runs the operations queued, then closes the file and lets go of its lock. Operations
    /// handed over afterwards fail with ``StoreError/Code/closed``.
    public func close() async {
        opening.close()
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            worker.stop { continuation.resume() }
        }
        unlock()
    }
}

/// The thread that owns the connection. Jobs queue up; each turn takes what is queued (up
/// to the operation limit) and runs it in one transaction.
final class SQLiteWorker: @unchecked Sendable {
    struct Job {
        var weight: Int
        /// A batch commit: its writes are applied with the group's other commits, sorted.
        var isCommit = false
        /// Runs inside the transaction; returns what to do once the transaction committed.
        var body: (SQLiteSession) throws(StoreError) -> () -> Void
        var fail: (StoreError) -> Void
    }

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private var stopped = false
    private var started = false
    private var onStopped: [() -> Void] = []

    private let maxOperations: Int
    private var checkpointer: SQLiteCheckpointer?
    private let logger: Logger
    /// Set when opening failed: queued and later jobs fail with it.
    private var startFailure: StoreError?

    init(maxOperations: Int, logger: Logger) {
        self.maxOperations = maxOperations
        self.logger = logger
    }

    /// Starts the thread that owns `session`; jobs queued before run now.
    func start(session: SQLiteSession, checkpointer: SQLiteCheckpointer?) {
        condition.lock()
        self.checkpointer = checkpointer
        started = true
        condition.unlock()
        let handOff = ThreadHandOff(session)
        let thread = Thread { [self] in self.loop(handOff) }
        thread.name = "dna-sqlite"
        thread.start()
    }

    /// Opening failed: what is queued, and whatever comes later, fails with `error`.
    func failStart(_ error: StoreError) {
        condition.lock()
        startFailure = error
        let queued = queue
        queue = []
        condition.unlock()
        for job in queued { job.fail(error) }
    }

    func submit(_ job: Job) {
        condition.lock()
        if let startFailure {
            condition.unlock()
            job.fail(startFailure)
            return
        }
        if stopping {
            condition.unlock()
            job.fail(StoreError(.closed, "the store is closed"))
            return
        }
        queue.append(job)
        if queue.count == 1 { condition.signal() }
        condition.unlock()
    }

    func stop(_ completion: (() -> Void)? = nil) {
        condition.lock()
        stopping = true
        if stopped || !started {
            // Never started (never opened, or opening failed): nothing runs to stop.
            stopped = true
            let queued = queue
            queue = []
            condition.unlock()
            for job in queued { job.fail(StoreError(.closed, "the store was closed before it opened")) }
            completion?()
            return
        }
        if let completion { onStopped.append(completion) }
        condition.signal()
        condition.unlock()
    }

    private func loop(_ handOff: ThreadHandOff<SQLiteSession>) {
        // The only reference: setting it to nil closes the connection.
        var session: SQLiteSession? = handOff.take()
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                let callbacks = onStopped
                onStopped = []
                condition.unlock()
                session = nil  // closes the connection on this thread
                checkpointer?.stop()
                callbacks.forEach { $0() }
                return
            }
            var taken = 0
            var weight = 0
            while taken < queue.count && (taken == 0 || weight + queue[taken].weight <= maxOperations) {
                weight += queue[taken].weight
                taken += 1
            }
            let group = Array(queue[..<taken])
            queue.removeFirst(taken)
            condition.unlock()
            run(group, in: session!)
            checkpointer?.wrote(weight)
        }
    }

    private func run(_ group: [Job], in session: SQLiteSession) {
        var completions: [() -> Void] = []
        completions.reserveCapacity(group.count)
        do throws(StoreError) {
            try session.connection.execute("BEGIN IMMEDIATE")
            for job in group {
                // Anything else may read what the commits before it wrote.
                if !job.isCommit { try session.flushWrites() }
                completions.append(try job.body(session))
            }
            try session.flushWrites()
            try session.connection.execute("COMMIT")
        } catch {
            session.discardWrites()
            if session.connection.isInTransaction { try? session.connection.execute("ROLLBACK") }
            // A job that fails on its own must not fail the others with it; a database that
            // is unavailable fails them all alike, so there is no point splitting then.
            if group.count > 1 && error.code != .unavailable {
                for job in group { run([job], in: session) }
            } else {
                logger.debug("sqlite transaction failed", metadata: ["error": "\(error)", "jobs": "\(group.count)"])
                for job in group { job.fail(error) }
            }
            return
        }
        for completion in completions { completion() }
    }
}

/// Passes a value to a new thread once. The thread's closure stays alive as long as the
/// `Thread` object, which outlives the loop; holding the value there would keep a
/// connection open after `close()` returned, and its late close (a WAL checkpoint under
/// an exclusive lock) would make the next opener of the file find it locked.
final class ThreadHandOff<Value>: @unchecked Sendable {
    private var value: Value?
    init(_ value: Value) { self.value = value }
    /// The value; called once, by the thread it was meant for.
    func take() -> Value {
        defer { value = nil }
        return value!
    }
}
