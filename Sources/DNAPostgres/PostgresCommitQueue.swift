import DNAStore
import PostgresNIO
import Synchronization

/// The batches of each actor waiting while a statement for that actor is in flight.
/// Batches of one actor must apply strictly in order, so at most one statement per actor
/// runs at a time; the batches that queued up behind it are merged into the next one (one
/// round trip instead of one each).
final class CommitQueue: Sendable {
    struct Pending: Sendable {
        var batch: CommitBatch
        var completion: @Sendable (Result<Void, StoreError>) -> Void
    }

    /// An actor with a statement in flight.
    private struct Entry {
        /// The batches behind the statement in flight.
        var waiting: [Pending] = []
        /// Who waits for the actor's commits to be done (an activation or release of it).
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let entries = Mutex<[ActorID: Entry]>([:])
    private let maxOperations: Int
    private let statements = Atomic<Int>(0)

    init(maxOperations: Int) { self.maxOperations = maxOperations }

    /// How many statements were started (for tests: merged batches share one).
    var statementCount: Int { statements.load(ordering: .relaxed) }

    /// Queues a batch; returns it as a group to run now if nothing of its actor is in flight.
    func submit(_ pending: Pending) -> [Pending]? {
        let group: [Pending]? = entries.withLock { entries in
            let actor = pending.batch.registration.actor
            if entries[actor] != nil {
                entries[actor]!.waiting.append(pending)
                return nil
            }
            entries[actor] = Entry()
            return [pending]
        }
        if group != nil { statements.add(1, ordering: .relaxed) }
        return group
    }

    /// Called when the statement for `actor` is done: the next group to run for it, if
    /// batches wait; else the actor is idle and those waiting for that are woken.
    func finished(_ actor: ActorID) -> [Pending]? {
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        let group: [Pending]? = entries.withLock { entries in
            guard var entry = entries[actor] else { return nil }
            if entry.waiting.isEmpty {
                idleWaiters = entry.idleWaiters
                entries[actor] = nil
                return nil
            }
            let group = Self.takeRun(&entry.waiting, maxOperations: maxOperations)
            entries[actor] = entry
            return group
        }
        for waiter in idleWaiters { waiter.resume() }
        if group != nil { statements.add(1, ordering: .relaxed) }
        return group
    }

    /// Returns once no commit of `actor` is queued or in flight, so an activation or a
    /// release handed over after commits does not overtake them (as in SQLite's one queue).
    func whenIdle(_ actor: ActorID) async {
        if entries.withLock({ $0[actor] == nil }) { return }
        await withCheckedContinuation { continuation in
            let idle = entries.withLock { entries in
                guard entries[actor] != nil else { return true }
                entries[actor]!.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// The longest prefix of `queue` that is one run: the same registration, consecutive
    /// sequences, and within the operation limit (the first batch is always taken).
    static func takeRun(_ queue: inout [Pending], maxOperations: Int) -> [Pending] {
        var count = 1
        var operations = queue[0].batch.operations.count
        while count < queue.count {
            let previous = queue[count - 1].batch
            let next = queue[count].batch
            guard next.registration == previous.registration, next.sequence == previous.sequence + 1,
                operations + next.operations.count <= maxOperations
            else { break }
            operations += next.operations.count
            count += 1
        }
        let group = Array(queue[..<count])
        queue.removeFirst(count)
        return group
    }
}

/// The fenced write of one or more consecutive batches of a registration, as one statement
/// with data-modifying CTEs: `fence` advances `batch_seq` only where owner, epoch and the
/// predecessor match, and the upserts and deletes join it, so they write nothing when it
/// matched nothing. Returns how many rows the fence matched (1 or 0).
struct CommitStatement: PostgresPreparedStatement {
    typealias Row = Int64

    static let sql = """
        WITH fence AS (
            UPDATE dna_actors SET batch_seq = $2, order_state = COALESCE($11, order_state)
            WHERE actor_id = $1 AND owner = $3 AND epoch = $4 AND batch_seq = $5
            RETURNING actor_id),
        upserted AS (
            INSERT INTO dna_module_data (actor_id, module, key, value)
            SELECT fence.actor_id, u.module, u.key, u.value
            FROM fence, unnest($6::text[], $7::bytea[], $8::bytea[]) AS u(module, key, value)
            ON CONFLICT (actor_id, module, key) DO UPDATE SET value = excluded.value),
        deleted AS (
            DELETE FROM dna_module_data d
            USING fence, unnest($9::text[], $10::bytea[]) AS x(module, key)
            WHERE d.actor_id = fence.actor_id AND d.module = x.module AND d.key = x.key)
        SELECT count(*) FROM fence
        """

    var rowID: Int64
    var last: Int64
    var owner: String
    var epoch: Int64
    var predecessor: Int64
    var upsertModules: [String] = []
    var upsertKeys: [[UInt8]] = []
    var upsertValues: [[UInt8]] = []
    var deleteModules: [String] = []
    var deleteKeys: [[UInt8]] = []
    /// The last order state of the batches merged here (see ``CommitBatch/order``).
    var order: ByteBuffer?

    /// `operations` in order; only the last write to each key is kept (one statement may
    /// not touch a row twice), which is what applying them in order leaves.
    init<Operations: Sequence<StorageOperation>>(
        registration: Registration, first: Int64, last: Int64, operations: Operations, order: [UInt8]? = nil
    ) {
        self.order = order.map { ByteBuffer(bytes: $0) }
        rowID = registration.rowID
        self.last = last
        owner = registration.owner.rawValue
        epoch = registration.epoch
        predecessor = first - 1
        var latest: [OperationKey: Int] = [:]
        var kept: [StorageOperation] = []
        for operation in operations {
            let key = OperationKey(module: operation.module, key: operation.key)
            if let index = latest[key] {
                kept[index] = operation
            } else {
                latest[key] = kept.count
                kept.append(operation)
            }
        }
        for operation in kept {
            if let value = operation.value {
                upsertModules.append(operation.module)
                upsertKeys.append(operation.key)
                upsertValues.append(value)
            } else {
                deleteModules.append(operation.module)
                deleteKeys.append(operation.key)
            }
        }
    }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 11)
        bindings.append(rowID)
        bindings.append(last)
        bindings.append(owner)
        bindings.append(epoch)
        bindings.append(predecessor)
        bindings.append(upsertModules)
        bindings.append(ByteaArray(upsertKeys))
        bindings.append(ByteaArray(upsertValues))
        bindings.append(deleteModules)
        bindings.append(ByteaArray(deleteKeys))
        bindings.append(order)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }

    private struct OperationKey: Hashable {
        var module: String
        var key: [UInt8]
    }
}

/// Counts operations in flight so ``PostgresStore/close()`` can wait for them, and turns
/// new ones away once closing.
final class OperationGate: Sendable {
    private struct State {
        var active = 0
        var closing = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func enter() -> Bool {
        state.withLock { state in
            if state.closing { return false }
            state.active += 1
            return true
        }
    }

    func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.active -= 1
            guard state.active == 0, state.closing else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Turns new operations away and returns once the ones in flight are done.
    func close() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                state.closing = true
                if state.active == 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
