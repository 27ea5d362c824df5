/// The right of one activation to write for one actor name: the owner and the epoch that
/// the store granted. Every commit is checked against it in the same transaction.
public struct Registration: Sendable, Hashable {
    /// The name.
    public var actor: ActorID
    /// The store's surrogate key for the name; module data is keyed by it.
    public var rowID: Int64
    /// The node the name was granted to.
    public var owner: NodeID
    /// Grows by one on every grant of the name.
    public var epoch: Int64

    /// A registration as the store granted it.
    public init(actor: ActorID, rowID: Int64, owner: NodeID, epoch: Int64) {
        self.actor = actor
        self.rowID = rowID
        self.owner = owner
        self.epoch = epoch
    }
}

/// A row of the registration table, as `dna status --actors` shows it.
public struct RegistrationRecord: Sendable, Equatable {
    /// The name.
    public var actor: ActorID
    /// The node that holds the name; `nil` once it was released.
    public var owner: NodeID?
    /// The epoch of the name's latest grant (see ``Registration/epoch``).
    public var epoch: Int64

    /// A row as an engine read it.
    public init(actor: ActorID, owner: NodeID?, epoch: Int64) {
        self.actor = actor
        self.owner = owner
        self.epoch = epoch
    }
}

/// One stored row of a storage module.
///
/// Modules whose names start with ``runtimePrefix`` are the runtime's own; an actor's
/// modules cannot have such names. The store returns the registration's order state (see
/// ``CommitBatch/order``) as one such row, module ``orderModule``, empty key.
public struct ModuleRow: Sendable, Equatable {
    /// The start of the names of the runtime's own modules.
    public static let runtimePrefix = "dna."
    /// The module of the order-state row.
    public static let orderModule = "dna.order"
    /// The module of the transient state an activation handed over with its name (see
    /// ``OwnershipStore/handOver(_:to:transientState:)``); the new activation deletes it.
    public static let handOverModule = "dna.handover"
    /// The module of an actor's durable alarms (``AlarmRecord``), one row per alarm.
    public static let alarmModule = "dna.alarm"

    /// The module's name.
    public var module: String
    /// The row's key within its module.
    public var key: [UInt8]
    /// The stored value.
    public var value: [UInt8]

    /// A row of `module` at `key`.
    public init(module: String, key: [UInt8], value: [UInt8]) {
        self.module = module
        self.key = key
        self.value = value
    }
}

/// What a node asks for when it activates an actor.
public struct ActivationRequest: Sendable {
    /// The name to claim.
    public var actor: ActorID
    /// The claimant: the node that would run the actor.
    public var node: NodeID
    /// The nodes the claimant itself watched fall silent: for each, the heartbeat mark
    /// (``NodeRecord/heartbeatStamp``) it has seen unchanged for at least that node's
    /// failure timeout, by its own monotonic clock (the node's `SilenceWatch`). A name whose
    /// owner is dead by the store's clock is taken over only if its owner is here with the
    /// mark it still has: a jump of the store's wall clock makes heartbeats look old, not
    /// the claimant's own watch. `nil`: judged by the store's clock alone (tools and tests
    /// that run no node).
    public var silentNodes: [NodeID: Int64]?

    /// A claim of `actor` for `node` (see ``silentNodes`` for the last parameter).
    public init(actor: ActorID, node: NodeID, silentNodes: [NodeID: Int64]? = nil) {
        self.actor = actor
        self.node = node
        self.silentNodes = silentNodes
    }
}

/// What the store answered to an ``ActivationRequest``.
public enum ActivationOutcome: Sendable {
    /// The name is ours at this epoch; here is the actor's stored data, in key order per module.
    case granted(Registration, rows: [ModuleRow])
    /// A live node owns the name.
    case ownedElsewhere(NodeID)
}

/// One write of a batch.
public struct StorageOperation: Sendable, Equatable {
    /// The module written.
    public var module: String
    /// The key written.
    public var key: [UInt8]
    /// `nil` deletes the key.
    public var value: [UInt8]?

    /// A write of `value` at `key` of `module`; a `nil` value deletes the key.
    public init(module: String, key: [UInt8], value: [UInt8]?) {
        self.module = module
        self.key = key
        self.value = value
    }
}

/// All writes of one batch of one activation, committed atomically and fenced by
/// `registration`: applied in order (so the last write to a key wins), or not at all.
///
/// `sequence` numbers the batches of one registration 1, 2, 3, …: the store applies batch
/// `n` only right after batch `n - 1`, so an activation may hand over several batches
/// at once and none is ever committed on top of one that failed. A batch the store already
/// applied is answered with success and not applied again, so an attempt whose answer was
/// lost can be made again safely.
public struct CommitBatch: Sendable, Equatable {
    /// The registration that must still hold the name for the batch to be written.
    public var registration: Registration
    /// The batch's number among its registration's, from 1 (see above).
    public var sequence: Int64
    /// The writes, applied in order.
    public var operations: [StorageOperation]
    /// How long the caller waits for this attempt's answer; an engine that cannot answer
    /// within it answers ``StoreError/Code/outcomeUnknown`` (if the batch may have reached
    /// the database) or ``StoreError/Code/unavailable`` (if it certainly did not). `nil`:
    /// the engine's own limits apply.
    public var timeout: Duration?
    /// The runtime's order state (the latest request per origin node), stored with the
    /// batch in the name's own row — it outlives the epoch — and handed back at the next
    /// activation as a ``ModuleRow`` of ``ModuleRow/orderModule``. `nil`: unchanged.
    public var order: [UInt8]?
    /// Stream appends and consumer checkpoints of this batch (a consumer stage's), applied
    /// in its transaction after its fence and sequence checks: a batch applied already
    /// appends nothing again.
    public var streams: StreamEffects

    /// A batch; by default the engine's own limits apply, the order state is unchanged and
    /// no stream is touched.
    public init(
        registration: Registration, sequence: Int64, operations: [StorageOperation], timeout: Duration? = nil,
        order: [UInt8]? = nil, streams: StreamEffects = .none
    ) {
        self.registration = registration
        self.sequence = sequence
        self.operations = operations
        self.timeout = timeout
        self.order = order
        self.streams = streams
    }
}
