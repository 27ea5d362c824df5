import Foundation

/// The connection of an ``SQLiteStore`` with its prepared statements, and the store's
/// operations as run inside the worker's transaction. Used only on the worker thread.
final class SQLiteSession {
    let connection: SQLiteConnection
    private var pendingWrites: [PendingWrite] = []
    /// The bytes of keys and values in `pendingWrites`.
    private var pendingBytes = 0
    /// The bytes of keys and values bound since the statements' parameters were last
    /// cleared: an upper bound on the copies SQLite keeps.
    private(set) var boundBytesSinceClear = 0
    private let now = SQLiteSchema.nowMilliseconds

    private lazy var insertNode = prepared(
        """
        INSERT INTO dna_nodes (node_id, cluster, address, state, started_ms, heartbeat_ms, failure_timeout_ms, labels)
        VALUES (?1, ?2, ?3, 'joining', \(now), \(now), ?4, ?5)
        """)
    /// The heartbeat only moves forward (the row's mark, `NodeRecord.heartbeatStamp`,
    /// changes with every heartbeat, even two in one millisecond or after the clock went back).
    private lazy var updateHeartbeat = prepared(
        """
        UPDATE dna_nodes SET heartbeat_ms = max(\(now), heartbeat_ms + 1), activations = ?3,
            state = CASE WHEN state = 'draining' AND ?2 = 'up' THEN 'draining' ELSE ?2 END
        WHERE node_id = ?1 AND state <> 'left'
        """)
    private lazy var markDraining = prepared(
        """
        UPDATE dna_nodes SET state = 'draining' WHERE node_id = ?1 AND state = 'up'
        """)
    private lazy var markRebalanceRequested = prepared(
        """
        UPDATE dna_nodes SET rebalance_requested = 1 WHERE cluster = ?1 AND state = 'up'
        """)
    private lazy var clearRebalanceRequested = prepared(
        """
        UPDATE dna_nodes SET rebalance_requested = 0 WHERE node_id = ?1
        """)
    private lazy var selectNodes = prepared(
        """
        SELECT node_id, cluster, address, state, \(now) - heartbeat_ms, activations, failure_timeout_ms, labels, rebalance_requested,
            heartbeat_ms
        FROM dna_nodes WHERE cluster = ?1 ORDER BY node_id
        """)
    private lazy var selectNode = prepared(
        """
        SELECT node_id, cluster, address, state, \(now) - heartbeat_ms, activations, failure_timeout_ms, labels, rebalance_requested,
            heartbeat_ms
        FROM dna_nodes WHERE node_id = ?1
        """)
    private lazy var deleteGoneNodes = prepared(
        """
        DELETE FROM dna_nodes WHERE cluster = ?1
        AND \(now) - heartbeat_ms > (CASE WHEN state = 'left' THEN 0 ELSE failure_timeout_ms END) + ?2
        """)
    private lazy var releaseOthersNames = prepared(
        """
        UPDATE dna_actors SET owner = NULL
        WHERE owner IN (SELECT node_id FROM dna_nodes WHERE cluster = ?1 AND node_id <> ?2)
        """)
    private lazy var markOthersLeft = prepared(
        """
        UPDATE dna_nodes SET state = 'left' WHERE cluster = ?1 AND node_id <> ?2 AND state <> 'left'
        """)
    private lazy var selectName = prepared(
        """
        SELECT actor_id, owner, epoch, order_state FROM dna_actors WHERE namespace = ?1 AND kind = ?2 AND name = ?3
        """)
    private lazy var insertName = prepared(
        """
        INSERT INTO dna_actors (namespace, kind, name, owner, epoch) VALUES (?1, ?2, ?3, ?4, ?5)
        """)
    private lazy var takeOverName = prepared(
        """
        UPDATE dna_actors SET owner = ?2, epoch = ?3, batch_seq = 0 WHERE actor_id = ?1 AND epoch = ?4
        """)
    private lazy var releaseName = prepared(
        """
        UPDATE dna_actors SET owner = NULL WHERE actor_id = ?1 AND owner = ?2 AND epoch = ?3
        """)
    private lazy var handOverName = prepared(
        """
        UPDATE dna_actors SET owner = ?4, epoch = epoch + 1, batch_seq = 0 WHERE actor_id = ?1 AND owner = ?2 AND epoch = ?3
        """)
    private lazy var upsertHandOver = prepared(
        """
        INSERT INTO dna_module_data (actor_id, module, key, value) VALUES (?1, '\(ModuleRow.handOverModule)', X'', ?2)
        ON CONFLICT (actor_id, module, key) DO UPDATE SET value = excluded.value
        """)
    private lazy var selectDueAlarms = prepared(SQLiteSchema.dueAlarms)
    private lazy var selectModuleRows = prepared(
        """
        SELECT module, key, value FROM dna_module_data WHERE actor_id = ?1 ORDER BY module, key
        """)
    private lazy var selectFence = prepared("SELECT owner, epoch, batch_seq FROM dna_actors WHERE actor_id = ?1")
    private lazy var advanceSequence = prepared(
        """
        UPDATE dna_actors SET batch_seq = ?2, order_state = COALESCE(?5, order_state)
        WHERE actor_id = ?1 AND owner = ?3 AND epoch = ?4 AND batch_seq = ?2 - 1
        """)
    /// Upserts of 1, 2, 4, … ``SQLiteSchema/maxRowsPerUpsert`` rows, prepared on first use:
    /// one statement for many rows costs SQLite a third less per row than one each.
    private var upserts: [SQLiteStatement?] = Array(
        repeating: nil, count: SQLiteSchema.maxRowsPerUpsert.trailingZeroBitCount + 1)
    private lazy var deleteRow = prepared(
        """
        DELETE FROM dna_module_data WHERE actor_id = ?1 AND module = ?2 AND key = ?3
        """)
    private lazy var selectRegistrations = prepared(
        """
        SELECT namespace, kind, name, owner, epoch FROM dna_actors
        WHERE ?1 IS NULL OR kind = ?1 ORDER BY namespace, kind, name LIMIT ?2
        """)

    /// Statements are prepared once, eagerly, so a bad schema fails at open, not later.
    init(_ connection: SQLiteConnection) throws(StoreError) {
        self.connection = connection
        let largest = SQLiteSchema.maxRowsPerUpsert.trailingZeroBitCount
        upserts[largest] = try connection.prepare(SQLiteSchema.upsertModuleRows(1 << largest))
    }

    /// Statements of rarer operations (streams), prepared on first use and kept.
    private var statementCache: [String: SQLiteStatement] = [:]

    func cachedStatement(_ sql: String) -> SQLiteStatement {
        if let statement = statementCache[sql] { return statement }
        let statement = prepared(sql)
        statementCache[sql] = statement
        return statement
    }

    private func prepared(_ sql: String) -> SQLiteStatement {
        // The schema was checked at open, so preparing cannot fail short of corruption,
        // which the first step then reports.
        do { return try connection.prepare(sql) } catch { fatalError("DNA SQLite statement failed to prepare: \(error)") }
    }

    func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) throws(StoreError) {
        insertNode.bind(1, node.rawValue)
        insertNode.bind(2, cluster)
        insertNode.bind(3, address)
        insertNode.bind(4, failureTimeout.milliseconds)
        insertNode.bind(5, NodeRecord.encodeLabels(labels))
        try insertNode.run()
    }

    func requestRebalance(cluster: String) throws(StoreError) -> Int {
        markRebalanceRequested.bind(1, cluster)
        try markRebalanceRequested.run()
        return connection.changes
    }

    func rebalanceDone(node: NodeID) throws(StoreError) {
        clearRebalanceRequested.bind(1, node.rawValue)
        try clearRebalanceRequested.run()
    }

    func heartbeat(node: NodeID, state: NodeState, activations: Int64) throws(StoreError) {
        updateHeartbeat.bind(1, node.rawValue)
        updateHeartbeat.bind(2, state.rawValue)
        updateHeartbeat.bind(3, activations)
        try updateHeartbeat.run()
        if connection.changes == 0 { throw StoreError(.fenced, "node \(node) was declared gone") }
    }

    func requestDrain(node: NodeID) throws(StoreError) {
        markDraining.bind(1, node.rawValue)
        try markDraining.run()
        if connection.changes == 0 { throw StoreError(.invalidArgument, "node \(node) is not up: it cannot be asked to drain") }
    }

    private func readNode(_ statement: SQLiteStatement) -> NodeRecord {
        NodeRecord(
            id: NodeID(rawValue: statement.string(0)), cluster: statement.string(1), address: statement.string(2),
            state: NodeState(rawValue: statement.string(3)) ?? .left,
            heartbeatAgeMilliseconds: statement.int64(4), activations: statement.int64(5),
            failureTimeoutMilliseconds: statement.int64(6), labels: NodeRecord.decodeLabels(statement.string(7)),
            rebalanceRequested: statement.int64(8) != 0, heartbeatStamp: statement.int64(9))
    }

    func nodes(cluster: String) throws(StoreError) -> [NodeRecord] {
        defer { selectNodes.reset() }
        selectNodes.bind(1, cluster)
        var result: [NodeRecord] = []
        while try selectNodes.step() { result.append(readNode(selectNodes)) }
        return result
    }

    func forgetNodes(cluster: String, goneFor retention: Duration) throws(StoreError) -> Int {
        deleteGoneNodes.bind(1, cluster)
        deleteGoneNodes.bind(2, retention.milliseconds)
        try deleteGoneNodes.run()
        return connection.changes
    }

    func evictOtherNodes(cluster: String, keeping node: NodeID) throws(StoreError) {
        for statement in [releaseOthersNames, markOthersLeft] {
            statement.bind(1, cluster)
            statement.bind(2, node.rawValue)
            try statement.run()
        }
    }

    func activate(_ request: ActivationRequest) throws(StoreError) -> ActivationOutcome {
        let actor = request.actor
        selectName.bind(1, actor.namespace)
        selectName.bind(2, actor.kind)
        selectName.bind(3, actor.key)
        var rowID: Int64 = 0
        var current: ClaimDecision.Current?
        var order: [UInt8]?
        if try selectName.step() {
            rowID = selectName.int64(0)
            let owner = selectName.isNull(1) ? nil : NodeID(rawValue: selectName.string(1))
            current = ClaimDecision.Current(owner: owner, epoch: selectName.int64(2), ownerNode: nil)
            if !selectName.isNull(3) { order = selectName.bytes(3) }
        }
        selectName.reset()
        if let owner = current?.owner, owner != request.node {
            defer { selectNode.reset() }
            selectNode.bind(1, owner.rawValue)
            if try selectNode.step() { current?.ownerNode = readNode(selectNode) }
        }
        let epoch: Int64
        switch ClaimDecision.decide(current: current, claimant: request.node, silentNodes: request.silentNodes) {
        case .ownedElsewhere(let owner):
            return .ownedElsewhere(owner)
        case .insert(let newEpoch):
            insertName.bind(1, actor.namespace)
            insertName.bind(2, actor.kind)
            insertName.bind(3, actor.key)
            insertName.bind(4, request.node.rawValue)
            insertName.bind(5, newEpoch)
            try insertName.run()
            rowID = connection.lastInsertRowID
            epoch = newEpoch
        case .takeOver(let newEpoch):
            takeOverName.bind(1, rowID)
            takeOverName.bind(2, request.node.rawValue)
            takeOverName.bind(3, newEpoch)
            takeOverName.bind(4, newEpoch - 1)
            try takeOverName.run()
            guard connection.changes == 1 else {
                throw StoreError(.unavailable, "registration of \(actor) changed during the claim")
            }
            epoch = newEpoch
        }
        var rows: [ModuleRow] = []
        if current != nil {
            defer { selectModuleRows.reset() }
            selectModuleRows.bind(1, rowID)
            while try selectModuleRows.step() {
                rows.append(
                    ModuleRow(module: selectModuleRows.string(0), key: selectModuleRows.bytes(1), value: selectModuleRows.bytes(2)))
            }
        }
        if let order { rows.append(ModuleRow(module: ModuleRow.orderModule, key: [], value: order)) }
        return .granted(Registration(actor: actor, rowID: rowID, owner: request.node, epoch: epoch), rows: rows)
    }

    func release(_ registration: Registration) throws(StoreError) {
        releaseName.bind(1, registration.rowID)
        releaseName.bind(2, registration.owner.rawValue)
        releaseName.bind(3, registration.epoch)
        try releaseName.run()
    }

    func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) throws(StoreError) {
        // Batches of the name queued in this transaction are applied first.
        try flushWrites()
        handOverName.bind(1, registration.rowID)
        handOverName.bind(2, registration.owner.rawValue)
        handOverName.bind(3, registration.epoch)
        handOverName.bind(4, target.rawValue)
        try handOverName.run()
        guard connection.changes == 1 else {
            throw StoreError(.fenced, "\(registration.actor) is no longer held at epoch \(registration.epoch) by \(registration.owner)")
        }
        if let transientState {
            upsertHandOver.bind(1, registration.rowID)
            upsertHandOver.bind(2, bytes: transientState)
            try upsertHandOver.run()
        }
    }

    func dueAlarms(before: Int64, limit: Int) throws(StoreError) -> [DueAlarm] {
        defer { selectDueAlarms.reset() }
        selectDueAlarms.bind(1, bytes: AlarmRecord.dueKey(before))
        selectDueAlarms.bind(2, Int64(limit))
        var result: [DueAlarm] = []
        while try selectDueAlarms.step() {
            let s = selectDueAlarms
            let due = s.bytes(4).reduce(Int64(0)) { $0 << 8 | Int64($1) }
            result.append(
                DueAlarm(
                    actor: ActorID(namespace: s.string(0), kind: s.string(1), key: s.string(2)),
                    name: String(decoding: s.bytes(3), as: UTF8.self), due: due,
                    owner: s.isNull(5) ? nil : NodeID(rawValue: s.string(5))))
        }
        return result
    }

    func registrations(kind: String?, limit: Int) throws(StoreError) -> [RegistrationRecord] {
        defer { selectRegistrations.reset() }
        selectRegistrations.bind(1, kind)
        selectRegistrations.bind(2, Int64(limit))
        var result: [RegistrationRecord] = []
        while try selectRegistrations.step() {
            let s = selectRegistrations
            result.append(
                RegistrationRecord(
                    actor: ActorID(namespace: s.string(0), kind: s.string(1), key: s.string(2)),
                    owner: s.isNull(3) ? nil : NodeID(rawValue: s.string(3)), epoch: s.int64(4)))
        }
        return result
    }

    /// The fence and sequence check of one batch; its writes wait in `pendingWrites` for
    /// ``flushWrites()`` (in the same transaction). Throws ``StoreError/Code/fenced`` or
    /// ``StoreError/Code/predecessorMissing`` and keeps nothing if the check fails.
    func commit(_ batch: CommitBatch) throws(StoreError) {
        let registration = batch.registration
        // One statement on the common path: advance the batch sequence where owner, epoch
        // and predecessor all match. Only when it matches nothing, find out which did not.
        advanceSequence.bind(1, registration.rowID)
        advanceSequence.bind(2, batch.sequence)
        advanceSequence.bind(3, registration.owner.rawValue)
        advanceSequence.bind(4, registration.epoch)
        advanceSequence.bind(5, bytes: batch.order)
        try advanceSequence.run()
        if connection.changes != 1 {
            var holds = false
            var lastSequence: Int64 = 0
            selectFence.bind(1, registration.rowID)
            if try selectFence.step() {
                holds =
                    !selectFence.isNull(0) && selectFence.string(0) == registration.owner.rawValue
                    && selectFence.int64(1) == registration.epoch
                lastSequence = selectFence.int64(2)
            }
            selectFence.reset()
            guard holds else {
                throw StoreError(.fenced, "\(registration.actor) is no longer held by \(registration.owner) at epoch \(registration.epoch)")
            }
            // Applied already (an earlier attempt whose answer was lost): done, once.
            if lastSequence >= batch.sequence { return }
            throw StoreError(.predecessorMissing, "\(registration.actor): batch \(batch.sequence) follows \(lastSequence)")
        }
        if !batch.streams.isEmpty { try apply(batch.streams) }
        for operation in batch.operations {
            pendingWrites.append(PendingWrite(rowID: registration.rowID, order: pendingWrites.count, operation: operation))
            pendingBytes &+= operation.key.count &+ (operation.value?.count ?? 0)
        }
    }

    /// Applies the writes of the checked batches, sorted by primary key so the B-tree is
    /// walked in order (same-key writes keep their order, so the last one still wins).
    func flushWrites() throws(StoreError) {
        guard !pendingWrites.isEmpty else { return }
        defer {
            pendingWrites.removeAll(keepingCapacity: true)
            // SQLite keeps its copies of bound values until they are bound again (up to 127
            // rows across the upsert statements), so they are let go once the bytes bound
            // since the last time pass the limit.
            boundBytesSinceClear &+= pendingBytes
            pendingBytes = 0
            if boundBytesSinceClear > Self.maxRetainedBindingBytes {
                for statement in upserts { statement?.clearBindings() }
                deleteRow.clearBindings()
                boundBytesSinceClear = 0
            }
        }
        // Often already in order (one batch of ascending keys): then sorting is skipped.
        if pendingWrites.count > 1,
            !pendingWrites.indices.dropFirst().allSatisfy({ index in
                PendingWrite.precedes(pendingWrites[index - 1], pendingWrites[index])
            })
        {
            pendingWrites.sort(by: PendingWrite.precedes)
        }
        var index = 0
        while index < pendingWrites.count {
            guard pendingWrites[index].operation.value != nil else {
                let write = pendingWrites[index]
                deleteRow.bind(1, write.rowID)
                deleteRow.bind(2, write.operation.module)
                deleteRow.bind(3, bytes: write.operation.key)
                try deleteRow.run()
                index += 1
                continue
            }
            // The run of upserts here, written by the largest statement that fits in it.
            var end = index + 1
            while end < pendingWrites.count, end - index < SQLiteSchema.maxRowsPerUpsert, pendingWrites[end].operation.value != nil {
                end += 1
            }
            let sizeClass = Int.bitWidth - 1 - (end - index).leadingZeroBitCount
            let rows = 1 << sizeClass
            let statement = upsertStatement(sizeClass: sizeClass)
            for row in 0..<rows {
                let write = pendingWrites[index + row]
                let first = Int32(4 * row + 1)
                statement.bind(first, write.rowID)
                statement.bind(first + 1, write.operation.module)
                statement.bind(first + 2, bytes: write.operation.key)
                statement.bind(first + 3, bytes: write.operation.value!)
            }
            try statement.run()
            index += rows
        }
    }

    /// The most bytes of bound keys and values left with SQLite after a flush.
    static let maxRetainedBindingBytes = 1 << 20

    /// The upsert statements prepared so far, for tests.
    var preparedUpserts: [SQLiteStatement] { upserts.compactMap { $0 } }

    /// The upsert of `1 << sizeClass` rows.
    private func upsertStatement(sizeClass: Int) -> SQLiteStatement {
        if let statement = upserts[sizeClass] { return statement }
        let statement = prepared(SQLiteSchema.upsertModuleRows(1 << sizeClass))
        upserts[sizeClass] = statement
        return statement
    }

    /// Forgets checked batches whose transaction failed.
    func discardWrites() {
        pendingWrites.removeAll(keepingCapacity: true)
        pendingBytes = 0
    }
}

/// A write of a checked batch, waiting for ``SQLiteSession/flushWrites()``.
struct PendingWrite {
    var rowID: Int64
    var order: Int
    var operation: StorageOperation

    static func precedes(_ a: PendingWrite, _ b: PendingWrite) -> Bool {
        if a.rowID != b.rowID { return a.rowID < b.rowID }
        if a.operation.module != b.operation.module { return a.operation.module < b.operation.module }
        let order = compareBytes(a.operation.key, b.operation.key)
        if order != 0 { return order < 0 }
        return a.order < b.order
    }

    private static func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int32 {
        a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                let common = min(x.count, y.count)
                if common > 0, let p = x.baseAddress, let q = y.baseAddress {
                    let result = memcmp(p, q, common)
                    if result != 0 { return result }
                }
                return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
            }
        }
    }
}
