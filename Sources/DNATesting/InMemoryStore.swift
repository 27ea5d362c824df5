import DNAStore
import Synchronization

/// A store that keeps everything in this process's memory. **For unit tests only**: nothing
/// survives the process. It follows the same rules as the real engines and can be made to
/// fail on demand (``setUnavailable(_:)``) to test how the runtime handles a store failure.
public final class InMemoryStore: ActorStore {
    private struct Node {
        var cluster: String
        var address: String
        var state: NodeState
        var heartbeat: ContinuousClock.Instant
        var activations: Int64
    }

    private struct Name {
        var rowID: Int64
        var owner: NodeID?
        var epoch: Int64
        var sequence: Int64 = 0
    }

    private struct State {
        var nodes: [NodeID: Node] = [:]
        var names: [ActorID: Name] = [:]
        var nextRowID: Int64 = 1
        /// rowID → module → encoded key → value.
        var data: [Int64: [String: [[UInt8]: [UInt8]]]] = [:]
        var unavailable: StoreError?
    }

    private let state = Mutex(State())
    private let clock = ContinuousClock()

    public init() {}

    /// While set, every operation fails with this error (e.g. ``StoreError/Code/unavailable``).
    public func setUnavailable(_ error: StoreError?) {
        state.withLock { $0.unavailable = error }
    }

    private func record(_ id: NodeID, _ node: Node, now: ContinuousClock.Instant) -> NodeRecord {
        NodeRecord(
            id: id, cluster: node.cluster, address: node.address, state: node.state,
            heartbeatAgeMilliseconds: (now - node.heartbeat).milliseconds, activations: node.activations)
    }

    private func withAvailableState<T>(_ body: (inout State) throws(StoreError) -> T) throws(StoreError) -> T {
        let result: Result<T, StoreError> = state.withLock { state in
            if let error = state.unavailable { return .failure(error) }
            do throws(StoreError) { return .success(try body(&state)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public func join(node: NodeID, cluster: String, address: String) async throws(StoreError) {
        let now = clock.now
        try withAvailableState { state throws(StoreError) in
            state.nodes[node] = Node(cluster: cluster, address: address, state: .joining, heartbeat: now, activations: 0)
        }
    }

    public func heartbeat(node: NodeID, state nodeState: NodeState, activations: Int64) async throws(StoreError) {
        let now = clock.now
        try withAvailableState { state throws(StoreError) in
            guard var row = state.nodes[node], row.state != .left else {
                throw StoreError(.fenced, "node \(node) was declared gone")
            }
            row.heartbeat = now
            row.state = nodeState
            row.activations = activations
            state.nodes[node] = row
        }
    }

    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] {
        let now = clock.now
        return try withAvailableState { state throws(StoreError) in
            state.nodes.filter { $0.value.cluster == cluster }
                .map { record($0.key, $0.value, now: now) }
                .sorted { $0.id.rawValue < $1.id.rawValue }
        }
    }

    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) {
        try withAvailableState { state throws(StoreError) in
            for (id, row) in state.nodes where id != node && row.cluster == cluster {
                state.nodes[id]?.state = .left
            }
            for (actor, name) in state.names {
                if let owner = name.owner, owner != node, state.nodes[owner]?.cluster == cluster {
                    state.names[actor]?.owner = nil
                }
            }
        }
    }

    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome {
        try request.actor.validate()
        let now = clock.now
        return try withAvailableState { state throws(StoreError) in
            let current = state.names[request.actor].map { name in
                ClaimDecision.Current(
                    owner: name.owner, epoch: name.epoch,
                    ownerNode: name.owner.flatMap { id in state.nodes[id].map { record(id, $0, now: now) } })
            }
            let rowID: Int64
            let epoch: Int64
            switch ClaimDecision.decide(current: current, claimant: request.node, failureTimeout: request.failureTimeout) {
            case .ownedElsewhere(let owner):
                return .ownedElsewhere(owner)
            case .insert(let newEpoch):
                rowID = state.nextRowID
                state.nextRowID += 1
                epoch = newEpoch
            case .takeOver(let newEpoch):
                rowID = state.names[request.actor]!.rowID
                epoch = newEpoch
            }
            state.names[request.actor] = Name(rowID: rowID, owner: request.node, epoch: epoch)
            var rows: [ModuleRow] = []
            for (module, entries) in state.data[rowID] ?? [:] {
                for (key, value) in entries { rows.append(ModuleRow(module: module, key: key, value: value)) }
            }
            rows.sort { $0.module != $1.module ? $0.module < $1.module : $0.key.lexicographicallyPrecedes($1.key) }
            return .granted(Registration(actor: request.actor, rowID: rowID, owner: request.node, epoch: epoch), rows: rows)
        }
    }

    public func release(_ registration: Registration) async throws(StoreError) {
        try withAvailableState { state throws(StoreError) in
            if let name = state.names[registration.actor], name.owner == registration.owner, name.epoch == registration.epoch {
                state.names[registration.actor]?.owner = nil
            }
        }
    }

    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] {
        try withAvailableState { state throws(StoreError) in
            state.names.filter { kind == nil || $0.key.kind == kind }
                .map { RegistrationRecord(actor: $0.key, owner: $0.value.owner, epoch: $0.value.epoch) }
                .sorted { $0.actor.description < $1.actor.description }
                .prefix(limit).map { $0 }
        }
    }

    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        let result: Result<Void, StoreError> = Result { () throws(StoreError) in
            try withAvailableState { state throws(StoreError) in
                let registration = batch.registration
                guard let name = state.names[registration.actor], name.owner == registration.owner,
                    name.epoch == registration.epoch
                else {
                    throw StoreError(.fenced, "\(registration.actor) is no longer held at epoch \(registration.epoch)")
                }
                guard name.sequence == batch.sequence - 1 else {
                    throw StoreError(.predecessorMissing, "\(registration.actor): batch \(batch.sequence) follows \(name.sequence)")
                }
                state.names[registration.actor]?.sequence = batch.sequence
                var modules = state.data[registration.rowID] ?? [:]
                for operation in batch.operations {
                    modules[operation.module, default: [:]][operation.key] = operation.value
                }
                state.data[registration.rowID] = modules
            }
        }
        completion(result)
    }

    public func close() async {}
}
