@_spi(StoreEngine) public import DNAStore
public import DNAStore
import Logging
import PostgresNIO
import Synchronization

/// The PostgreSQL engine of `ActorStore` (postgres-nio), for clusters: several nodes
/// share one database. Same semantics as `SQLiteStore`.
///
/// A pool of connections (``Configuration/pool``) serves every operation;
/// commits of different actors run concurrently, each one statement. Batches of one actor
/// that are handed over while an earlier one is still in flight wait for it and are then
/// merged into one statement (see ``commit(_:completion:)``). The pool reconnects by
/// itself after the server went away; meanwhile operations fail with
/// `StoreError.Code.unavailable`.
public final class PostgresStore: ActorStore {
    /// What the store was opened with.
    public let configuration: Configuration
    private let client: PostgresClient
    private let opening = OpenOnce()
    private let closing = OnceSignal()
    private let gate = OperationGate()
    private let commits: CommitQueue
    private var logger: Logger { configuration.logger }

    /// Makes the store; nothing is connected until ``run()`` (a node runs the stores it
    /// makes). Its connection pool works only while ``run()`` runs.
    ///
    /// - Throws: `StoreError.Code.invalidArgument` for settings out of range or TLS
    ///   settings that cannot be used.
    public init(configuration: Configuration) throws(StoreError) {
        guard configuration.pool.maximumConnections >= 1, configuration.maxOperationsPerStatement >= 1 else {
            throw StoreError(.invalidArgument, "pool.maximumConnections and maxOperationsPerStatement must be at least 1")
        }
        guard (0...configuration.pool.maximumConnections).contains(configuration.pool.minimumConnections) else {
            throw StoreError(.invalidArgument, "pool.minimumConnections must be from 0 to pool.maximumConnections")
        }
        self.configuration = configuration
        // The pool logs every failed connection attempt at `info`; while a server is down
        // that is a line per back-off step, so its background log starts at `notice`.
        var backgroundLogger = configuration.logger
        backgroundLogger.logLevel = max(configuration.logger.logLevel, .notice)
        client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: backgroundLogger)
        commits = CommitQueue(maxOperations: configuration.maxOperationsPerStatement)
    }

    /// Connects, creates the schema if the database has none, and checks it is DNA's
    /// (migrating an older version). Done once; later calls repeat its outcome.
    ///
    /// - Throws: `StoreError.Code.notADNADatabase` for a database that holds other
    ///   tables but no DNA schema, `StoreError.Code.schemaTooNew`,
    ///   `StoreError.Code.unavailable` when the server cannot be reached.
    public func open() async throws(StoreError) {
        let configuration = configuration
        try await opening.run { () throws(StoreError) in try await Self.prepareSchema(configuration) }
    }

    private static func prepareSchema(_ configuration: Configuration) async throws(StoreError) {
        let logger = configuration.logger
        // The schema is checked on a connection of its own, outside the pool: a wrong
        // password or an unreachable server is reported now, plainly, rather than as a
        // lease that times out.
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try configuration.connectionConfiguration(), id: 0, logger: logger)
        } catch {
            throw PostgresErrors.map(error, "connecting to \(configuration.redactedURL)")
        }
        do {
            try await PostgresSchema.prepare(connection, logger: logger, database: configuration.database)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
        logger.debug("opened PostgreSQL store", metadata: ["url": "\(configuration.redactedURL)"])
    }

    /// Opens the store, then runs its connection pool until the task is cancelled or
    /// ``close()`` is called; then closes it (waiting for the operations under way).
    public func run() async throws(StoreError) {
        try await open()
        let client = client
        let closing = closing
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask { await closing.wait() }
            _ = await group.next()
            group.cancelAll()
        }
        await close()
    }

    /// Runs `body` with the store running (for tools and tests that use a store without a
    /// node); closes it afterwards.
    public func withRunning<T: Sendable>(_ body: @Sendable (PostgresStore) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await self.run()
                return nil
            }
            do {
                try await open()
                let result = try await body(self)
                await close()
                try await group.waitForAll()
                return result
            } catch {
                await close()
                try? await group.waitForAll()
                throw error
            }
        }
    }

    /// For tests: runs when the pool grants a connection, before the attempt starts on it.
    let connectionGrantedHook = Mutex<(@Sendable () async -> Void)?>(nil)

    /// How many commit statements were started; batches merged into one count once.
    var commitStatementCount: Int { commits.statementCount }

    // MARK: Running operations

    /// Runs `body` on a pooled connection; fails with `StoreError.Code.unavailable` if
    /// no connection is had within ``Configuration/leaseTimeout`` (the pool itself would
    /// queue the request for a minute while the server is down).
    ///
    /// `outcomeUnknownOnceSent`: for writes, an answer lost once the statements may have
    /// reached the server is `StoreError.Code.outcomeUnknown`, not a refusal.
    func withConnection<T: Sendable>(
        _ context: @autoclosure () -> String, outcomeUnknownOnceSent: Bool = false,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        guard opening.isOpen else { throw StoreError(.closed, "the store is not open: run it (a node runs the stores it makes)") }
        guard gate.enter() else { throw StoreError(.closed, "the store is closed") }
        defer { gate.leave() }
        return try await pooled(context(), outcomeUnknownOnceSent: outcomeUnknownOnceSent, body)
    }

    /// ``withConnection(_:_:)`` for callers that entered the gate already (commits, which
    /// enter when handed over so that ``close()`` waits for queued ones too).
    ///
    /// Two deadlines: a connection within ``Configuration/leaseTimeout``, and the whole
    /// within `timeout` or ``Configuration/operationTimeout``. A deadline that fires before
    /// `body` started abandons the attempt: nothing is sent, even on a connection the pool
    /// grants afterwards, and the caller is told `StoreError.Code.unavailable`. Once
    /// `body` started, a lost answer is `StoreError.Code.outcomeUnknown` for callers that
    /// say `outcomeUnknownOnceSent`.
    private func pooled<T: Sendable>(
        _ context: @autoclosure () -> String, timeout: Duration? = nil, outcomeUnknownOnceSent: Bool = false,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        let client = client
        let attempt = PooledAttempt()
        let grantedHook = connectionGrantedHook.withLock { $0 }
        do {
            return try await Deadline.race(
                attempt, leaseTimeout: configuration.leaseTimeout,
                operationTimeout: min(configuration.operationTimeout, timeout ?? configuration.operationTimeout)
            ) {
                try await client.withConnection { connection in
                    await grantedHook?()
                    // The pool may grant a connection to a request whose deadline passed.
                    guard attempt.start(on: connection) else { throw CancellationError() }
                    return try await body(connection)
                }
            }
        } catch {
            if let rolledBack = error as? RolledBack { throw PostgresErrors.map(rolledBack.underlying, context()) }
            let mapped = PostgresErrors.map(error, context())
            // Once started, the statements may have reached the server: a lost answer (not
            // one the server gave) is not a refusal.
            if outcomeUnknownOnceSent, attempt.hasStarted, mapped.code == .unavailable, PostgresErrors.sqlState(error) == nil {
                throw StoreError(.outcomeUnknown, mapped.message)
            }
            throw mapped
        }
    }

    /// Runs `body` in a transaction on a pooled connection.
    ///
    /// Every write that a caller is told succeeded goes through here, even a single
    /// statement: postgres-nio reports a statement done at its CommandComplete, and an
    /// implicit transaction commits only afterwards (at Sync), so a connection lost in
    /// between would acknowledge a write that was rolled back. An explicit `COMMIT`
    /// completes only once the transaction is committed.
    /// Every write goes through here, so an answer lost once its statements may have
    /// reached the server is `outcomeUnknown`, never a refusal (see
    /// ``withConnection(_:outcomeUnknownOnceSent:_:)``): a caller told `unavailable` knows
    /// nothing happened — a `createStream` or a split retried after a lost answer would
    /// otherwise be refused for what did happen.
    func inTransaction<T: Sendable>(
        _ context: @autoclosure () -> String, outcomeUnknownOnceSent: Bool = true,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StoreError) -> T {
        let logger = logger
        return try await withConnection(context(), outcomeUnknownOnceSent: outcomeUnknownOnceSent) { connection in
            try await Self.transaction(on: connection, logger: logger, body)
        }
    }

    private static func transaction<T: Sendable>(
        on connection: PostgresConnection, logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        do { try await connection.run("BEGIN", logger: logger) } catch { throw RolledBack(underlying: error) }
        let value: T
        do {
            value = try await body(connection)
        } catch {
            do {
                try await connection.run("ROLLBACK", logger: logger)
            } catch {
                // A connection left inside a failed transaction must not go back to the pool.
                try? await connection.close()
            }
            throw RolledBack(underlying: error)
        }
        // Only from here on may a lost answer hide a committed transaction.
        try await connection.run("COMMIT", logger: logger)
        return value
    }

    /// What failed before a transaction's COMMIT was sent: it was rolled back (a connection
    /// closed inside a transaction aborts it too), so nothing of it happened.
    struct RolledBack: Error {
        let underlying: any Error
    }

    // MARK: Membership

    /// Adds the node in state `joining`, its heartbeat at the server's clock.
    public func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) async throws(StoreError) {
        let logger = logger
        let timeout = failureTimeout.milliseconds
        let labels = NodeRecord.encodeLabels(labels)
        try await inTransaction("joining node \(node)") { connection in
            try await connection.run(
                """
                INSERT INTO dna_nodes (node_id, cluster, address, state, started_ms, heartbeat_ms, failure_timeout_ms, labels)
                VALUES (\(node.rawValue), \(cluster), \(address), 'joining', \(unescaped: Self.now), \(unescaped: Self.now), \(timeout),
                    \(labels))
                """, logger: logger)
        }
    }

    /// Asks every `up` node of the cluster for a rebalancing round; returns how many were asked.
    public func requestRebalance(cluster: String) async throws(StoreError) -> Int {
        let logger = logger
        return try await inTransaction("asking the nodes of \(cluster) to rebalance") { connection in
            try await connection.query(
                "UPDATE dna_nodes SET rebalance_requested = true WHERE cluster = \(cluster) AND state = 'up' RETURNING 1",
                logger: logger
            ).collect().count
        }
    }

    /// Clears the node's `NodeRecord.rebalanceRequested`.
    public func rebalanceDone(node: NodeID) async throws(StoreError) {
        let logger = logger
        try await inTransaction("clearing the rebalance request of node \(node)") { connection in
            try await connection.run(
                "UPDATE dna_nodes SET rebalance_requested = false WHERE node_id = \(node.rawValue)", logger: logger)
        }
    }

    /// Records a heartbeat by the server's clock, with the node's state and activations.
    ///
    /// - Throws: `StoreError.Code.fenced` if the node's row says `left` or is gone.
    public func heartbeat(node: NodeID, state: NodeState, activations: Int64) async throws(StoreError) {
        let logger = logger
        // The heartbeat only moves forward: the row's mark (NodeRecord.heartbeatStamp) changes
        // with every heartbeat, even two in one millisecond or after the clock went back.
        let updated = try await inTransaction("heartbeat of node \(node)") { connection in
            try await connection.query(
                """
                UPDATE dna_nodes SET activations = \(activations),
                    heartbeat_ms = greatest(clock.now_ms, heartbeat_ms + 1),
                    state = CASE WHEN state = 'draining' AND \(state.rawValue) = 'up' THEN 'draining' ELSE \(state.rawValue) END
                FROM (SELECT \(unescaped: Self.now) AS now_ms) AS clock
                WHERE node_id = \(node.rawValue) AND state <> 'left' RETURNING 1
                """, logger: logger
            ).collect().count
        }
        if updated == 0 { throw StoreError(.fenced, "node \(node) was declared gone") }
    }

    /// Moves an `up` node to `draining`.
    ///
    /// - Throws: `StoreError.Code.invalidArgument` if the node is not `up`.
    public func requestDrain(node: NodeID) async throws(StoreError) {
        let logger = logger
        let updated = try await inTransaction("asking node \(node) to drain") { connection in
            try await connection.query(
                "UPDATE dna_nodes SET state = 'draining' WHERE node_id = \(node.rawValue) AND state = 'up' RETURNING 1", logger: logger
            ).collect().count
        }
        if updated == 0 { throw StoreError(.invalidArgument, "node \(node) is not up: it cannot be asked to drain") }
    }

    private static let now = PostgresSchema.nowMilliseconds
    private static let nodeColumns =
        "node_id, cluster, address, state, \(now) - heartbeat_ms, activations, failure_timeout_ms, labels, rebalance_requested, heartbeat_ms"
    private static let ownerNodeColumns =
        "n.node_id, n.cluster, n.address, n.state, \(now) - n.heartbeat_ms, n.activations, n.failure_timeout_ms, n.heartbeat_ms"

    /// The nodes of the cluster, by id, with heartbeat ages by the server's clock.
    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] {
        let logger = logger
        return try await withConnection("reading the nodes of \(cluster)") { connection in
            var result: [NodeRecord] = []
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.nodeColumns) FROM dna_nodes WHERE cluster = \(cluster) ORDER BY node_id",
                logger: logger)
            {
                let (id, cluster, address, state, age, activations, timeout, labels, rebalance, stamp) = try row.decode(
                    (String, String, String, String, Int64, Int64, Int64, String, Bool, Int64).self)
                result.append(
                    NodeRecord(
                        id: NodeID(rawValue: id), cluster: cluster, address: address, state: NodeState(rawValue: state) ?? .left,
                        heartbeatAgeMilliseconds: age, activations: activations, failureTimeoutMilliseconds: timeout,
                        labels: NodeRecord.decodeLabels(labels), rebalanceRequested: rebalance, heartbeatStamp: stamp))
            }
            return result
        }
    }

    /// Deletes the rows of the cluster's nodes gone for longer than `retention` (by the
    /// server's clock); returns how many.
    public func forgetNodes(cluster: String, goneFor retention: Duration) async throws(StoreError) -> Int {
        let logger = logger
        let retentionMilliseconds = retention.milliseconds
        return try await inTransaction("forgetting the gone nodes of \(cluster)") { connection in
            try await connection.query(
                """
                DELETE FROM dna_nodes WHERE cluster = \(cluster)
                AND \(unescaped: Self.now) - heartbeat_ms > (CASE WHEN state = 'left' THEN 0 ELSE failure_timeout_ms END) + \(retentionMilliseconds)
                RETURNING 1
                """, logger: logger
            ).collect().count
        }
    }

    /// Marks every other node of the cluster `left` and releases their names, in one statement.
    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) {
        let logger = logger
        // One statement: both parts see the same snapshot and commit together.
        try await inTransaction("evicting the other nodes of \(cluster)") { connection in
            try await connection.run(
                """
                WITH gone AS (
                    UPDATE dna_nodes SET state = 'left'
                    WHERE cluster = \(cluster) AND node_id <> \(node.rawValue) AND state <> 'left')
                UPDATE dna_actors SET owner = NULL
                WHERE owner IN (SELECT node_id FROM dna_nodes WHERE cluster = \(cluster) AND node_id <> \(node.rawValue))
                """, logger: logger)
        }
    }

    // MARK: Registration

    /// Claims the name for `request.node` once the actor's commits in flight are answered;
    /// when granted, returns the actor's stored data.
    ///
    /// - Throws: `StoreError.Code.invalidName` for a name that breaks the rules of `ActorID`.
    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome {
        try request.actor.validate()
        await commits.whenIdle(request.actor)
        let logger = logger
        return try await inTransaction("activating \(request.actor)") { connection in
            try await Self.activate(request, on: connection, logger: logger)
        }
    }

    /// The claim, inside the caller's transaction: the name's row is locked (`FOR UPDATE`)
    /// so the decision and its write cannot interleave with another claimant's.
    private static func activate(
        _ request: ActivationRequest, on connection: PostgresConnection, logger: Logger
    ) async throws -> ActivationOutcome {
        let actor = request.actor
        // Twice at most: a claimant that loses the race to insert a new name reads the
        // winner's row the second time.
        for _ in 0..<2 {
            var current: ClaimDecision.Current?
            var rowID: Int64 = 0
            var order: [UInt8]?
            for try await row in try await connection.query(
                """
                SELECT a.actor_id, a.owner, a.epoch, a.order_state, \(unescaped: ownerNodeColumns)
                FROM dna_actors a LEFT JOIN dna_nodes n ON n.node_id = a.owner
                WHERE a.namespace = \(actor.namespace) AND a.kind = \(actor.kind) AND a.name = \(actor.key)
                FOR UPDATE OF a
                """, logger: logger)
            {
                let (id, owner, epoch, orderState, nodeID, cluster, address, state, age, activations, timeout, stamp) = try row.decode(
                    (Int64, String?, Int64, ByteBuffer?, String?, String?, String?, String?, Int64?, Int64?, Int64?, Int64?).self)
                rowID = id
                order = orderState?.bytes
                var ownerNode: NodeRecord?
                if let nodeID, let cluster, let address, let state, let age, let activations, let timeout, let stamp {
                    ownerNode = NodeRecord(
                        id: NodeID(rawValue: nodeID), cluster: cluster, address: address,
                        state: NodeState(rawValue: state) ?? .left, heartbeatAgeMilliseconds: age, activations: activations,
                        failureTimeoutMilliseconds: timeout, heartbeatStamp: stamp)
                }
                current = ClaimDecision.Current(owner: owner.map(NodeID.init(rawValue:)), epoch: epoch, ownerNode: ownerNode)
            }
            let epoch: Int64
            switch ClaimDecision.decide(current: current, claimant: request.node, silentNodes: request.silentNodes) {
            case .ownedElsewhere(let owner):
                return .ownedElsewhere(owner)
            case .insert(let newEpoch):
                let inserted = try await connection.query(
                    """
                    INSERT INTO dna_actors (namespace, kind, name, owner, epoch)
                    VALUES (\(actor.namespace), \(actor.kind), \(actor.key), \(request.node.rawValue), \(newEpoch))
                    ON CONFLICT (namespace, kind, name) DO NOTHING RETURNING actor_id
                    """, logger: logger
                ).collect()
                guard let row = inserted.first else { continue }  // another claimant inserted it first
                let id = try row.decode(Int64.self)
                return .granted(Registration(actor: actor, rowID: id, owner: request.node, epoch: newEpoch), rows: [])
            case .takeOver(let newEpoch):
                let updated = try await connection.query(
                    """
                    UPDATE dna_actors SET owner = \(request.node.rawValue), epoch = \(newEpoch), batch_seq = 0
                    WHERE actor_id = \(rowID) AND epoch = \(newEpoch - 1) RETURNING 1
                    """, logger: logger
                ).collect()
                guard updated.count == 1 else {
                    throw StoreError(.unavailable, "registration of \(actor) changed during the claim")
                }
                epoch = newEpoch
            }
            var rows: [ModuleRow] = []
            for try await (module, key, value) in try await connection.query(
                "SELECT module, key, value FROM dna_module_data WHERE actor_id = \(rowID) ORDER BY module, key",
                logger: logger
            ).decode((String, ByteBuffer, ByteBuffer).self) {
                rows.append(ModuleRow(module: module, key: key.bytes, value: value.bytes))
            }
            if let order { rows.append(ModuleRow(module: ModuleRow.orderModule, key: [], value: order)) }
            return .granted(Registration(actor: actor, rowID: rowID, owner: request.node, epoch: epoch), rows: rows)
        }
        throw StoreError(.unavailable, "registration of \(actor) changed during the claim")
    }

    /// Gives the name up if `registration` still holds it (otherwise does nothing), once the
    /// actor's commits in flight are answered.
    public func release(_ registration: Registration) async throws(StoreError) {
        await commits.whenIdle(registration.actor)
        let logger = logger
        try await inTransaction("releasing \(registration.actor)") { connection in
            try await connection.run(
                """
                UPDATE dna_actors SET owner = NULL
                WHERE actor_id = \(registration.rowID) AND owner = \(registration.owner.rawValue) AND epoch = \(registration.epoch)
                """, logger: logger)
        }
    }

    /// Hands the name to `target` at the next epoch, once the actor's commits in flight are
    /// answered; `transientState` is kept in the same transaction.
    ///
    /// - Throws: `StoreError.Code.fenced` if `registration` no longer holds the name;
    ///   `StoreError.Code.outcomeUnknown` if the answer was lost once the hand-over was sent
    ///   (the name may be the target's).
    public func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) async throws(StoreError) {
        await commits.whenIdle(registration.actor)
        let logger = logger
        // A lost answer may hide a hand-over that happened: the caller is told so.
        let updated = try await inTransaction("handing \(registration.actor) over", outcomeUnknownOnceSent: true) { connection in
            let updated = try await connection.query(
                """
                UPDATE dna_actors SET owner = \(target.rawValue), epoch = epoch + 1, batch_seq = 0
                WHERE actor_id = \(registration.rowID) AND owner = \(registration.owner.rawValue) AND epoch = \(registration.epoch)
                RETURNING 1
                """, logger: logger
            ).collect().count
            if updated == 1, let transientState {
                try await connection.run(
                    """
                    INSERT INTO dna_module_data (actor_id, module, key, value)
                    VALUES (\(registration.rowID), \(ModuleRow.handOverModule), \(ByteBuffer(bytes: [])), \(ByteBuffer(bytes: transientState)))
                    ON CONFLICT (actor_id, module, key) DO UPDATE SET value = excluded.value
                    """, logger: logger)
            }
            return updated
        }
        guard updated == 1 else {
            throw StoreError(.fenced, "\(registration.actor) is no longer held at epoch \(registration.epoch) by \(registration.owner)")
        }
    }

    /// Alarms due at or before `before` (ms since 1970), the earliest first, at most `limit`,
    /// each with the live owner of its actor's name (`nil` if none).
    public func dueAlarms(before: Int64, limit: Int) async throws(StoreError) -> [DueAlarm] {
        let logger = logger
        let key = ByteBuffer(bytes: AlarmRecord.dueKey(before))
        return try await withConnection("reading due alarms") { connection in
            var result: [DueAlarm] = []
            for try await (namespace, kind, name, key, due, owner) in try await connection.query(
                """
                SELECT a.namespace, a.kind, a.name, m.key, substring(m.value FROM 1 FOR 8),
                    CASE WHEN n.state <> 'left' AND \(unescaped: Self.now) - n.heartbeat_ms < n.failure_timeout_ms THEN a.owner END
                FROM dna_module_data m JOIN dna_actors a ON a.actor_id = m.actor_id LEFT JOIN dna_nodes n ON n.node_id = a.owner
                WHERE m.module = \(ModuleRow.alarmModule) AND substring(m.value FROM 1 FOR 8) <= \(key)
                ORDER BY substring(m.value FROM 1 FOR 8) LIMIT \(Int64(limit))
                """, logger: logger
            ).decode((String, String, String, ByteBuffer, ByteBuffer, String?).self) {
                result.append(
                    DueAlarm(
                        actor: ActorID(namespace: namespace, kind: kind, key: name), name: String(buffer: key),
                        due: due.readableBytesView.reduce(Int64(0)) { $0 << 8 | Int64($1) }, owner: owner.map(NodeID.init(rawValue:))))
            }
            return result
        }
    }

    /// Registered names, of one kind or all, ordered by namespace, kind and key; at most `limit`.
    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] {
        let logger = logger
        return try await withConnection("reading registrations") { connection in
            var result: [RegistrationRecord] = []
            for try await (namespace, kind, name, owner, epoch) in try await connection.query(
                """
                SELECT namespace, kind, name, owner, epoch FROM dna_actors
                WHERE \(kind)::text IS NULL OR kind = \(kind) ORDER BY namespace, kind, name LIMIT \(Int64(limit))
                """, logger: logger
            ).decode((String, String, String, String?, Int64).self) {
                result.append(
                    RegistrationRecord(
                        actor: ActorID(namespace: namespace, kind: kind, key: name), owner: owner.map(NodeID.init(rawValue:)),
                        epoch: epoch))
            }
            return result
        }
    }

    // MARK: Data

    /// Commits a batch atomically and fenced; calls `completion` once, on any thread.
    ///
    /// One statement checks owner, epoch and `batch_seq == sequence - 1`, writes the rows
    /// and advances `batch_seq`. While a statement for the same actor is in flight, later
    /// batches wait; when it finishes, those waiting with consecutive sequences are merged
    /// into one statement. A merged group succeeds or fails as a whole, every batch in it
    /// with the same result.
    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        guard opening.isOpen else {
            completion(.failure(StoreError(.closed, "the store is not open: run it (a node runs the stores it makes)")))
            return
        }
        guard gate.enter() else {
            completion(.failure(StoreError(.closed, "the store is closed")))
            return
        }
        if let group = commits.submit(CommitQueue.Pending(batch: batch, completion: completion)) {
            start(group)
        }
    }

    private func start(_ group: [CommitQueue.Pending]) {
        Task {
            let result: Result<Void, StoreError>
            do throws(StoreError) {
                try await self.run(group.map(\.batch))
                result = .success(())
            } catch {
                result = .failure(error)
            }
            // Answered before the actor counts as idle: whoever waits for that (an
            // activation or release of it) then sees every answer given.
            for pending in group { pending.completion(result) }
            if let next = self.commits.finished(group[0].batch.registration.actor) {
                self.start(next)
            }
            for _ in group { self.gate.leave() }
        }
    }

    /// The fenced write of consecutive batches of one registration, as one statement.
    private func run(_ batches: [CommitBatch]) async throws(StoreError) {
        let registration = batches[0].registration
        let statement = CommitStatement(
            registration: registration, first: batches[0].sequence, last: batches[batches.count - 1].sequence,
            operations: batches.lazy.flatMap(\.operations), order: batches.last(where: { $0.order != nil })?.order)
        let logger = logger
        let timeout = batches.compactMap(\.timeout).min()
        let effects = batches.map(\.streams).filter { !$0.isEmpty }
        let matched = try await pooled("committing \(registration.actor)", timeout: timeout, outcomeUnknownOnceSent: true) {
            connection in
            try await Self.transaction(on: connection, logger: logger) { connection in
                var matched: Int64 = 0
                for try await count in try await connection.execute(statement, logger: logger) { matched = count }
                // Only once the fence matched: a batch applied before appends nothing again.
                if matched == 1 {
                    try await Self.lockPartitions(of: effects.flatMap { $0.appends.map(\.stream) }, on: connection, logger: logger)
                    for effect in effects { try await Self.apply(effect, on: connection, logger: logger) }
                }
                return matched
            }
        }
        if matched == 1 { return }
        // Nothing was written. Tell why: the registration is gone, or a predecessor is.
        let fence = try await pooled("committing \(registration.actor)") { connection in
            var fence: (String?, Int64, Int64)?
            for try await row in try await connection.query(
                "SELECT owner, epoch, batch_seq FROM dna_actors WHERE actor_id = \(registration.rowID)", logger: logger
            ).decode((String?, Int64, Int64).self) {
                fence = row
            }
            return fence
        }
        guard let fence, fence.0 == registration.owner.rawValue, fence.1 == registration.epoch else {
            throw StoreError(
                .fenced, "\(registration.actor) is no longer held by \(registration.owner) at epoch \(registration.epoch)")
        }
        // Applied already (an earlier attempt whose answer was lost): done, once.
        if fence.2 >= batches[batches.count - 1].sequence { return }
        throw StoreError(.predecessorMissing, "\(registration.actor): batch \(batches[0].sequence) follows \(fence.2)")
    }

    /// Waits for operations in flight, then stops ``run()`` (which closes every
    /// connection). Operations started afterwards fail with `StoreError.Code.closed`.
    public func close() async {
        opening.close()
        await gate.close()
        closing.signal()
    }
}

/// Runs a pooled attempt against its deadlines without waiting for it to give up: the
/// caller gets `StoreError.Code.unavailable` when the time is up, and the operation is
/// cancelled and left to end on its own.
enum Deadline {
    /// Who answers first: the operation or a timer.
    private final class Race<T: Sendable>: Sendable {
        private let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)
        private let work = Mutex<Task<Void, Never>?>(nil)

        func arm(_ continuation: CheckedContinuation<T, any Error>) { slot.withLock { $0 = continuation } }
        func track(_ task: Task<Void, Never>) { work.withLock { $0 = task } }
        func cancelWork() { work.withLock { $0 }?.cancel() }

        /// Resumes the caller unless the other side already did; says whether it did.
        func finish(_ result: Result<T, any Error>) -> Bool {
            let continuation = slot.withLock { slot -> CheckedContinuation<T, any Error>? in
                defer { slot = nil }
                return slot
            }
            continuation?.resume(with: result)
            return continuation != nil
        }
    }

    /// Runs `body` (which calls ``PooledAttempt/start(on:)`` before it sends anything).
    /// The lease deadline applies until the attempt started; the operation deadline always.
    /// Raced rather than in a task group: a group waits for all of its tasks, and a driver
    /// call that never returns (a connection lost at the wrong moment) would hold the
    /// caller, and the actor behind it, forever.
    static func race<T: Sendable>(
        _ attempt: PooledAttempt, leaseTimeout: Duration, operationTimeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let race = Race<T>()
        return try await withCheckedThrowingContinuation { continuation in
            race.arm(continuation)
            let work = Task {
                do { _ = race.finish(.success(try await body())) } catch { _ = race.finish(.failure(error)) }
            }
            race.track(work)
            let begun = ContinuousClock.now
            let timers = Task {
                for (deadline, waitingForLease) in [(leaseTimeout, true), (operationTimeout, false)].sorted(by: { $0.0 < $1.0 }) {
                    try? await Task.sleep(until: begun + deadline, clock: .continuous)
                    if Task.isCancelled { return }
                    if attempt.abandon() {
                        let waited = waitingForLease ? "no PostgreSQL connection within" : "PostgreSQL did not answer within"
                        if race.finish(.failure(StoreError(.unavailable, "\(waited) \(deadline)"))) { race.cancelWork() }
                        return
                    }
                    // Started: the lease deadline no longer applies.
                    if waitingForLease { continue }
                    if race.finish(.failure(StoreError(.unavailable, "PostgreSQL did not answer within \(deadline)"))) {
                        race.cancelWork()
                        // The operation is stuck on its connection: close it, so the pool gets
                        // it back (and replaces it) instead of losing it to the stuck operation.
                        attempt.closeConnection()
                    }
                    return
                }
            }
            // The timers are not needed once the operation answered.
            Task {
                await work.value
                timers.cancel()
            }
        }
    }
}

/// One try of a pooled operation (a ``StoreAttempt``) and the connection it started on.
final class PooledAttempt: Sendable {
    private let attempt = StoreAttempt()
    private let connection = Mutex<PostgresConnection?>(nil)

    /// On the granted connection, before anything is sent: false if the attempt was
    /// abandoned (then nothing may be sent).
    func start(on connection: PostgresConnection) -> Bool {
        self.connection.withLock { $0 = connection }
        return attempt.start()
    }

    /// At a deadline: true if nothing was or will be sent (the attempt is abandoned).
    func abandon() -> Bool { attempt.abandon() }

    var hasStarted: Bool { attempt.hasStarted }

    func closeConnection() {
        connection.withLock { $0 }?.close().whenComplete { _ in }
    }
}
