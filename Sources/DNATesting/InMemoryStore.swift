@_spi(StoreEngine) public import DNAStore
public import DNAStore
import Synchronization

/// A store that keeps everything in this process's memory. **For unit tests and the
/// simulation only**: nothing survives the process. It follows the same rules as the real
/// engines (`InMemoryStoreState`), reads its clock from a `DNAClock` (so a test clock
/// decides heartbeat ages), and can be made to fail on demand (``setUnavailable(_:)``).
public final class InMemoryStore: ActorStore {
    private let database: InMemoryDatabase
    private let clock: any DNAClock
    private let interposer: (any InMemoryStoreInterposer)?

    /// - Parameter clock: the store's clock (heartbeat ages are measured on it).
    public init(clock: any DNAClock = SystemClock()) {
        self.database = InMemoryDatabase()
        self.clock = clock
        self.interposer = nil
    }

    /// A store over `database`, which other stores made this way share (as nodes share a
    /// database server), whose every operation goes through `interposer`: the simulation's
    /// network to the store, with its delays and faults.
    package init(sharing database: InMemoryDatabase, clock: any DNAClock, interposer: any InMemoryStoreInterposer) {
        self.database = database
        self.clock = clock
        self.interposer = interposer
    }

    /// Nothing to open: the store lives in memory.
    public func open() async throws(StoreError) {}

    /// While set, every operation fails with this error (e.g. `StoreError.Code.unavailable`).
    public func setUnavailable(_ error: StoreError?) {
        database.locked.withLock { $0.unavailable = error }
    }

    private func performNow<T>(_ body: (inout InMemoryStoreState, DNAInstant) throws(StoreError) -> T) -> Result<T, StoreError> {
        let now = clock.now
        return database.locked.withLock { state in
            if let error = state.unavailable { return .failure(error) }
            do throws(StoreError) { return .success(try body(&state.data, now)) } catch { return .failure(error) }
        }
    }

    private func perform<T: Sendable>(
        _ operation: String = #function, _ body: @escaping @Sendable (inout InMemoryStoreState, DNAInstant) throws(StoreError) -> T
    ) async throws(StoreError) -> T {
        guard let interposer else { return try performNow(body).get() }
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<T, StoreError>, Never>) in
            interposer.intercept(operation, apply: { self.performNow(body) }, answer: { continuation.resume(returning: $0) })
        }
        return try result.get()
    }

    /// Adds the node in state `joining`, with a heartbeat at the store clock's now.
    public func join(node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String]) async throws(StoreError) {
        try await perform { state, now throws(StoreError) in
            state.join(node: node, cluster: cluster, address: address, failureTimeout: failureTimeout, labels: labels, now: now)
        }
    }

    /// Asks every `up` node of the cluster for a rebalancing round; returns how many.
    public func requestRebalance(cluster: String) async throws(StoreError) -> Int {
        try await perform { state, _ throws(StoreError) in state.requestRebalance(cluster: cluster) }
    }

    /// Clears the node's request for a rebalancing round.
    public func rebalanceDone(node: NodeID) async throws(StoreError) {
        try await perform { state, _ throws(StoreError) in state.rebalanceDone(node: node) }
    }

    /// Records a heartbeat, the node's state and its activations; `fenced` for a node that left or is gone.
    public func heartbeat(node: NodeID, state nodeState: NodeState, activations: Int64) async throws(StoreError) {
        try await perform { state, now throws(StoreError) in
            try state.heartbeat(node: node, state: nodeState, activations: activations, now: now)
        }
    }

    /// Asks an `up` node to drain.
    public func requestDrain(node: NodeID) async throws(StoreError) {
        try await perform { state, _ throws(StoreError) in try state.requestDrain(node: node) }
    }

    /// The cluster's nodes, with heartbeat ages by the store's clock.
    public func nodes(cluster: String) async throws(StoreError) -> [NodeRecord] {
        try await perform { state, now throws(StoreError) in state.nodes(cluster: cluster, now: now) }
    }

    /// Deletes the nodes gone for longer than `retention`; returns how many.
    public func forgetNodes(cluster: String, goneFor retention: Duration) async throws(StoreError) -> Int {
        try await perform { state, now throws(StoreError) in state.forgetNodes(cluster: cluster, goneFor: retention, now: now) }
    }

    /// Marks every other node of the cluster `left` and releases their names.
    public func evictOtherNodes(cluster: String, keeping node: NodeID) async throws(StoreError) {
        try await perform { state, _ throws(StoreError) in state.evictOtherNodes(cluster: cluster, keeping: node) }
    }

    /// Claims the name by the registration rule and, when granted, returns its stored data.
    public func activate(_ request: ActivationRequest) async throws(StoreError) -> ActivationOutcome {
        try request.actor.validate()
        return try await perform { state, now throws(StoreError) in try state.activate(request, now: now) }
    }

    /// Gives the name up if `registration` still holds it.
    public func release(_ registration: Registration) async throws(StoreError) {
        try await perform { state, _ throws(StoreError) in state.release(registration) }
    }

    /// Hands the name to `target` at the next epoch, if `registration` still holds it.
    public func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]?) async throws(StoreError) {
        try await perform { state, _ throws(StoreError) in try state.handOver(registration, to: target, transientState: transientState) }
    }

    /// Creates a stream of `partitions` partitions.
    public func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) async throws(StoreError) {
        try StreamRules.checkCreate(stream, partitions: partitions, retention: retention)
        try await perform { state, _ throws(StoreError) in try state.createStream(stream, partitions: partitions, retention: retention) }
    }

    /// Appends the records atomically; with a producer, records appended before are not stored again.
    public func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer?
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        try stream.validate()
        try StreamAppendRule.validate(producer)
        return try await perform { state, _ throws(StoreError) in
            try state.append(records, to: stream, producer: producer, now: self.clock.wallNow.milliseconds)
        }
    }

    /// Up to `limit` records of a partition from `sequence` on, in order.
    public func readStream(
        _ stream: StreamName, partition: Int, from sequence: Int64, limit: Int
    ) async throws(StoreError)
        -> [StreamRecord]
    {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in
            try state.readStream(stream, partition: partition, from: sequence, limit: limit)
        }
    }

    /// Records a consumer's checkpoint on a partition.
    public func commitProgress(consumer: String, stream: StreamName, partition: Int, next: Int64) async throws(StoreError) {
        try stream.validate()
        try await perform { state, _ throws(StoreError) in
            try state.commitProgress(consumer: consumer, stream: stream, partition: partition, next: next)
        }
    }

    /// Gives the consumer a checkpoint at the start of every partition it has none on; returns how many.
    public func registerConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in try state.registerConsumer(consumer, of: stream) }
    }

    /// Forgets a consumer's checkpoints; returns how many partitions it had them on.
    public func forgetConsumer(_ consumer: String, of stream: StreamName) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in try state.forgetConsumer(consumer, of: stream) }
    }

    /// Lets a consumer's parked partitions run again; returns how many were parked.
    public func resumeConsumer(_ consumer: String, of stream: StreamName, partition: Int?) async throws(StoreError) -> Int {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in try state.resumeConsumer(consumer, of: stream, partition: partition) }
    }

    /// Deletes what every stream's retention lets go; returns how many records.
    public func trimStreams() async throws(StoreError) -> Int {
        try await perform { state, _ throws(StoreError) in state.trimStreams(now: self.clock.wallNow.milliseconds) }
    }

    /// Splits or merges partitions in one step; returns the children's ids.
    public func reshard(_ stream: StreamName, _ operation: StreamReshard) async throws(StoreError) -> [Int] {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in try state.reshard(stream, operation) }
    }

    /// The stream's partitions and consumers.
    public func streamStatus(_ stream: StreamName) async throws(StoreError) -> StreamStatus {
        try stream.validate()
        return try await perform { state, _ throws(StoreError) in try state.streamStatus(stream) }
    }

    /// Alarms due at or before `before` (ms since 1970), earliest first, at most `limit`.
    public func dueAlarms(before: Int64, limit: Int) async throws(StoreError) -> [DueAlarm] {
        try await perform { state, now throws(StoreError) in state.dueAlarms(before: before, limit: limit, now: now) }
    }

    /// Registered names, optionally of one kind.
    public func registrations(kind: String?, limit: Int) async throws(StoreError) -> [RegistrationRecord] {
        try await perform { state, _ throws(StoreError) in state.registrations(kind: kind, limit: limit) }
    }

    /// Commits the batch atomically and fenced (through the interposer, when there is one).
    public func commit(_ batch: CommitBatch, completion: @escaping @Sendable (Result<Void, StoreError>) -> Void) {
        let apply = { @Sendable in self.performNow { state, _ throws(StoreError) in _ = try state.commit(batch) } }
        guard let interposer else { return completion(apply()) }
        interposer.intercept("commit", apply: apply, answer: completion)
    }

    /// Does nothing: the data stays in memory.
    public func close() async {}
}

/// The data of in-memory stores, which several ``InMemoryStore``s may share.
package final class InMemoryDatabase: Sendable {
    struct Locked {
        var data = InMemoryStoreState()
        var unavailable: StoreError?
    }

    let locked = Mutex(Locked())

    package init() {}

    /// Reads or changes the data directly (the simulation's checks).
    package func withState<T>(_ body: (inout InMemoryStoreState) throws -> T) rethrows -> T {
        try locked.withLock { try body(&$0.data) }
    }
}

/// Stands between ``InMemoryStore``'s callers and its data: the simulation's network to the
/// store. For each operation it calls `apply` at most once (when the operation reaches the
/// data) and `answer` at most once (never, if the caller is gone).
package protocol InMemoryStoreInterposer: Sendable {
    func intercept<T: Sendable>(
        _ operation: String, apply: @escaping @Sendable () -> Result<T, StoreError>,
        answer: @escaping @Sendable (Result<T, StoreError>) -> Void)
}

/// The rules of a store, applied to data in memory, synchronously: what ``InMemoryStore``
/// and the cluster simulation run. `now` is the store's clock.
package struct InMemoryStoreState: Sendable {
    package struct Node: Sendable {
        package var cluster: String
        package var address: String
        package var state: NodeState
        package var heartbeat: DNAInstant
        package var activations: Int64
        package var failureTimeout: Duration
        package var labels: [String] = []
        package var rebalanceRequested = false
        /// Heartbeats written: the row's heartbeat mark (``NodeRecord/heartbeatStamp``).
        package var heartbeats: Int64 = 0
    }

    package struct Name: Sendable {
        package var rowID: Int64
        package var owner: NodeID?
        package var epoch: Int64
        package var sequence: Int64 = 0
        package var order: [UInt8]?
    }

    package private(set) var nodes: [NodeID: Node] = [:]
    /// The nodes' ids in order, kept by `join` and `forgetNodes`: every node reads every row
    /// each heartbeat, and rows are added and removed far more rarely.
    private var nodeOrder: [NodeID] = []
    package private(set) var names: [ActorID: Name] = [:]
    private var nextRowID: Int64 = 1
    /// rowID → module → encoded key → value.
    package private(set) var data: [Int64: [String: [[UInt8]: [UInt8]]]] = [:]
    /// The actors with alarms set, by row: what `dueAlarms` reads, without a scan of every name.
    private var actorsWithAlarms: [Int64: ActorID] = [:]

    package init() {}

    private func record(_ id: NodeID, _ node: Node, now: DNAInstant) -> NodeRecord {
        NodeRecord(
            id: id, cluster: node.cluster, address: node.address, state: node.state,
            heartbeatAgeMilliseconds: (now - node.heartbeat).milliseconds, activations: node.activations,
            failureTimeoutMilliseconds: node.failureTimeout.milliseconds, labels: node.labels,
            rebalanceRequested: node.rebalanceRequested, heartbeatStamp: node.heartbeats)
    }

    package mutating func join(
        node: NodeID, cluster: String, address: String, failureTimeout: Duration, labels: [String] = [], now: DNAInstant
    ) {
        if nodes[node] == nil {
            nodeOrder.insert(node, at: nodeOrder.firstIndex { $0.rawValue > node.rawValue } ?? nodeOrder.endIndex)
        }
        nodes[node] = Node(
            cluster: cluster, address: address, state: .joining, heartbeat: now, activations: 0, failureTimeout: failureTimeout,
            labels: labels)
    }

    package mutating func requestRebalance(cluster: String) -> Int {
        let asked = nodes.filter { $0.value.cluster == cluster && $0.value.state == .up }.map(\.key)
        for id in asked { nodes[id]?.rebalanceRequested = true }
        return asked.count
    }

    package mutating func rebalanceDone(node: NodeID) {
        nodes[node]?.rebalanceRequested = false
    }

    package mutating func heartbeat(node: NodeID, state: NodeState, activations: Int64, now: DNAInstant) throws(StoreError) {
        guard var row = nodes[node], row.state != .left else {
            throw StoreError(.fenced, "node \(node) was declared gone")
        }
        row.heartbeat = now
        row.heartbeats += 1
        if !(row.state == .draining && state == .up) { row.state = state }
        row.activations = activations
        nodes[node] = row
    }

    package mutating func requestDrain(node: NodeID) throws(StoreError) {
        guard nodes[node]?.state == .up else {
            throw StoreError(.invalidArgument, "node \(node) is not up: it cannot be asked to drain")
        }
        nodes[node]?.state = .draining
    }

    package func nodes(cluster: String, now: DNAInstant) -> [NodeRecord] {
        nodeOrder.compactMap { id in nodes[id].flatMap { $0.cluster == cluster ? record(id, $0, now: now) : nil } }
    }

    package mutating func forgetNodes(cluster: String, goneFor retention: Duration, now: DNAInstant) -> Int {
        let gone = nodes.filter { id, node in
            node.cluster == cluster && now - node.heartbeat > (node.state == .left ? .zero : node.failureTimeout) + retention
        }.map(\.key)
        for id in gone { nodes[id] = nil }
        if !gone.isEmpty { nodeOrder.removeAll { nodes[$0] == nil } }
        return gone.count
    }

    package mutating func evictOtherNodes(cluster: String, keeping node: NodeID) {
        for (id, row) in nodes where id != node && row.cluster == cluster {
            nodes[id]?.state = .left
        }
        for (actor, name) in names {
            if let owner = name.owner, owner != node, nodes[owner]?.cluster == cluster {
                names[actor]?.owner = nil
            }
        }
    }

    package mutating func activate(_ request: ActivationRequest, now: DNAInstant) throws(StoreError) -> ActivationOutcome {
        let current = names[request.actor].map { name in
            ClaimDecision.Current(
                owner: name.owner, epoch: name.epoch,
                ownerNode: name.owner.flatMap { id in nodes[id].map { record(id, $0, now: now) } })
        }
        let rowID: Int64
        let epoch: Int64
        switch ClaimDecision.decide(current: current, claimant: request.node, silentNodes: request.silentNodes) {
        case .ownedElsewhere(let owner):
            return .ownedElsewhere(owner)
        case .insert(let newEpoch):
            rowID = nextRowID
            nextRowID += 1
            epoch = newEpoch
        case .takeOver(let newEpoch):
            rowID = names[request.actor]!.rowID
            epoch = newEpoch
        }
        let order = names[request.actor]?.order
        names[request.actor] = Name(rowID: rowID, owner: request.node, epoch: epoch, order: order)
        var rows: [ModuleRow] = []
        for (module, entries) in data[rowID] ?? [:] {
            for (key, value) in entries { rows.append(ModuleRow(module: module, key: key, value: value)) }
        }
        rows.sort { $0.module != $1.module ? $0.module < $1.module : $0.key.lexicographicallyPrecedes($1.key) }
        if let order { rows.append(ModuleRow(module: ModuleRow.orderModule, key: [], value: order)) }
        return .granted(Registration(actor: request.actor, rowID: rowID, owner: request.node, epoch: epoch), rows: rows)
    }

    package mutating func release(_ registration: Registration) {
        if let name = names[registration.actor], name.owner == registration.owner, name.epoch == registration.epoch {
            names[registration.actor]?.owner = nil
        }
    }

    package mutating func handOver(_ registration: Registration, to target: NodeID, transientState: [UInt8]? = nil) throws(StoreError) {
        guard let name = names[registration.actor], name.owner == registration.owner, name.epoch == registration.epoch else {
            throw StoreError(.fenced, "\(registration.actor) is no longer held at epoch \(registration.epoch) by \(registration.owner)")
        }
        if let transientState { data[name.rowID, default: [:]][ModuleRow.handOverModule, default: [:]][[]] = transientState }
        names[registration.actor]?.owner = target
        names[registration.actor]?.epoch = name.epoch + 1
        names[registration.actor]?.sequence = 0
        handOvers[registration.actor, default: []].append((from: registration.owner, to: target))
    }

    /// Every hand-over applied, by actor (what the simulation checks a `migrate`'s answer
    /// against).
    package private(set) var handOvers: [ActorID: [(from: NodeID, to: NodeID)]] = [:]

    package struct Stream: Sendable {
        package var retention: StreamRetention
        package var partitions: [StreamPartitionStatus]
        package var records: [Int: [StreamRecord]] = [:]
        package var producers: [String: Int64] = [:]
        package var consumers: [String: [Int: Int64]] = [:]
        package var parked: [String: [Int: String]] = [:]
    }

    package private(set) var streams: [StreamName: Stream] = [:]

    package mutating func createStream(_ stream: StreamName, partitions: Int, retention: StreamRetention) throws(StoreError) {
        guard streams[stream] == nil else { throw StoreError(.invalidArgument, "stream \(stream) exists already") }
        let ranges = StreamKeyHash.ranges(count: partitions)
        streams[stream] = Stream(
            retention: retention,
            partitions: ranges.enumerated().map { index, range in
                StreamPartitionStatus(
                    partition: index, isOpen: true, keyLow: range.lo, keyHigh: range.hi, firstSequence: 1, nextSequence: 1, bytes: 0,
                    parents: [])
            })
    }

    /// `now`: the store's date (milliseconds since 1970), which the records are stamped with.
    package mutating func append(
        _ records: [StreamAppendRecord], to name: StreamName, producer: StreamProducer?, now: Int64 = WallClockTime.now.milliseconds
    ) throws(StoreError) -> [StreamPosition] {
        guard var stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        let plan = try StreamAppendRule.plan(
            records, in: stream.partitions, stream: name, producer: producer, lastStored: producer.flatMap { stream.producers[$0.id] } ?? 0)
        for row in plan.inserts {
            stream.records[row.partition, default: []].append(
                StreamRecord(
                    partition: row.partition, sequence: row.sequence, key: row.record.key, value: row.record.value,
                    appendedMilliseconds: now))
        }
        for partition in plan.changed {
            if let index = stream.partitions.firstIndex(where: { $0.partition == partition.partition }) {
                stream.partitions[index] = partition
            }
        }
        if let producer, let highest = plan.producerLast { stream.producers[producer.id] = highest }
        streams[name] = stream
        return plan.positions
    }

    package func readStream(_ name: StreamName, partition: Int, from sequence: Int64, limit: Int) throws(StoreError) -> [StreamRecord] {
        guard let stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        guard let status = stream.partitions.first(where: { $0.partition == partition }) else {
            throw StoreError(.notFound, "stream \(name) has no partition \(partition)")
        }
        try StreamReadRule.check(from: sequence, limit: limit, in: status, stream: name)
        return Array((stream.records[partition] ?? []).filter { $0.sequence >= sequence }.prefix(limit))
    }

    package mutating func commitProgress(
        consumer: String, stream name: StreamName, partition: Int, next: Int64, parked: String? = nil
    ) throws(StoreError) {
        guard var stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        guard let status = stream.partitions.first(where: { $0.partition == partition }) else {
            throw StoreError(.notFound, "stream \(name) has no partition \(partition)")
        }
        try StreamProgressRule.check(consumer: consumer, next: next, in: status, stream: name)
        stream.consumers[consumer, default: [:]][partition] = next
        stream.parked[consumer, default: [:]][partition] = parked
        if stream.parked[consumer]?.isEmpty == true { stream.parked[consumer] = nil }
        streams[name] = stream
    }

    package mutating func resumeConsumer(_ consumer: String, of name: StreamName, partition: Int?) throws(StoreError) -> Int {
        guard streams[name] != nil else { throw StoreError(.notFound, "no stream \(name)") }
        let parked = streams[name]?.parked[consumer] ?? [:]
        let resumed = parked.keys.filter { partition == nil || $0 == partition }
        for key in resumed { streams[name]?.parked[consumer]?[key] = nil }
        if streams[name]?.parked[consumer]?.isEmpty == true { streams[name]?.parked[consumer] = nil }
        return resumed.count
    }

    /// Applies a batch's stream effects all or none.
    private mutating func apply(_ effects: StreamEffects) throws(StoreError) {
        let before = streams
        do throws(StoreError) {
            for append in effects.appends { _ = try self.append(append.records, to: append.stream, producer: nil) }
            for progress in effects.progress {
                try commitProgress(
                    consumer: progress.consumer, stream: progress.stream, partition: progress.partition, next: progress.next,
                    parked: progress.parked)
            }
        } catch {
            streams = before
            throw error
        }
    }

    package mutating func registerConsumer(_ consumer: String, of name: StreamName) throws(StoreError) -> Int {
        guard var stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        try StreamProgressRule.checkName(consumer)
        var made = 0
        for partition in stream.partitions where stream.consumers[consumer]?[partition.partition] == nil {
            stream.consumers[consumer, default: [:]][partition.partition] = partition.firstSequence
            made += 1
        }
        streams[name] = stream
        return made
    }

    package mutating func forgetConsumer(_ consumer: String, of name: StreamName) throws(StoreError) -> Int {
        guard streams[name] != nil else { throw StoreError(.notFound, "no stream \(name)") }
        streams[name]?.parked[consumer] = nil
        return streams[name]?.consumers.removeValue(forKey: consumer)?.count ?? 0
    }

    package mutating func trimStreams(now: Int64) -> Int {
        let forgottenBefore = now - StreamProducer.oneAppendRetention.milliseconds
        for name in Array(streams.keys) {
            guard let producers = streams[name]?.producers else { continue }
            streams[name]?.producers = producers.filter { !StreamProducer.isOneAppend($0.key, madeBefore: forgottenBefore) }
        }
        var deleted = 0
        for (name, var stream) in streams where stream.retention.maxAge != nil || stream.retention.maxBytesPerPartition != nil {
            for index in stream.partitions.indices {
                let partition = stream.partitions[index]
                let records = stream.records[partition.partition] ?? []
                let protected = stream.consumers.values.compactMap { $0[partition.partition] }.min()
                let keep = StreamRetentionRule.keepFrom(
                    records.map { ($0.sequence, Int64($0.key.count + $0.value.count), $0.appendedMilliseconds) }, partition: partition,
                    retention: stream.retention, protectedFrom: protected, now: now)
                let gone = records.filter { $0.sequence < keep }
                guard !gone.isEmpty else { continue }
                stream.records[partition.partition] = records.filter { $0.sequence >= keep }
                stream.partitions[index].firstSequence = keep
                stream.partitions[index].bytes -= gone.reduce(0) { $0 + Int64($1.key.count + $1.value.count) }
                deleted += gone.count
            }
            streams[name] = stream
        }
        return deleted
    }

    package mutating func reshard(_ name: StreamName, _ operation: StreamReshard) throws(StoreError) -> [Int] {
        guard var stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        let change = try operation.change(in: stream.partitions, stream: name)
        for index in stream.partitions.indices where change.closing.contains(stream.partitions[index].partition) {
            stream.partitions[index].isOpen = false
        }
        for child in change.opening {
            stream.partitions.append(
                StreamPartitionStatus(
                    partition: child.partition, isOpen: true, keyLow: child.lo, keyHigh: child.hi, firstSequence: 1, nextSequence: 1,
                    bytes: 0, parents: change.closing))
            for consumer in stream.consumers.keys { stream.consumers[consumer]?[child.partition] = 1 }
        }
        streams[name] = stream
        return change.opening.map(\.partition)
    }

    package func streamStatus(_ name: StreamName) throws(StoreError) -> StreamStatus {
        guard let stream = streams[name] else { throw StoreError(.notFound, "no stream \(name)") }
        return StreamStatus(
            stream: name, retention: stream.retention, partitions: stream.partitions, consumers: stream.consumers,
            parked: stream.parked)
    }

    package func dueAlarms(before: Int64, limit: Int, now: DNAInstant) -> [DueAlarm] {
        var due: [DueAlarm] = []
        for (rowID, actor) in actorsWithAlarms {
            guard let name = names[actor], name.rowID == rowID, let alarms = data[rowID]?[ModuleRow.alarmModule] else { continue }
            let owner = name.owner.flatMap { id in nodes[id].map { record(id, $0, now: now) } }.flatMap { $0.isAlive ? $0.id : nil }
            for (key, value) in alarms {
                guard let alarm = AlarmRecord(encoded: value), alarm.due <= before else { continue }
                due.append(DueAlarm(actor: actor, name: String(decoding: key, as: UTF8.self), due: alarm.due, owner: owner))
            }
        }
        return Array(due.sorted { $0.due < $1.due }.prefix(limit))
    }

    package func registrations(kind: String?, limit: Int) -> [RegistrationRecord] {
        names.filter { kind == nil || $0.key.kind == kind }
            .map { RegistrationRecord(actor: $0.key, owner: $0.value.owner, epoch: $0.value.epoch) }
            .sorted { $0.actor.description.utf8.lexicographicallyPrecedes($1.actor.description.utf8) }
            .prefix(limit).map { $0 }
    }

    /// Returns whether it applied the batch now (`false`: it was applied before).
    @discardableResult
    package mutating func commit(_ batch: CommitBatch) throws(StoreError) -> Bool {
        let registration = batch.registration
        guard let name = names[registration.actor], name.owner == registration.owner, name.epoch == registration.epoch else {
            throw StoreError(.fenced, "\(registration.actor) is no longer held at epoch \(registration.epoch)")
        }
        // Applied already (an earlier attempt whose answer was lost): done, once.
        if name.sequence >= batch.sequence { return false }
        guard name.sequence == batch.sequence - 1 else {
            throw StoreError(.predecessorMissing, "\(registration.actor): batch \(batch.sequence) follows \(name.sequence)")
        }
        if !batch.streams.isEmpty { try apply(batch.streams) }
        names[registration.actor]?.sequence = batch.sequence
        if let order = batch.order { names[registration.actor]?.order = order }
        var modules = data[registration.rowID] ?? [:]
        for operation in batch.operations {
            modules[operation.module, default: [:]][operation.key] = operation.value
        }
        if modules[ModuleRow.alarmModule]?.isEmpty == false {
            actorsWithAlarms[registration.rowID] = registration.actor
        } else {
            actorsWithAlarms[registration.rowID] = nil
        }
        data[registration.rowID] = modules
        return true
    }
}
