public import DNA
import DNAStore
import DNATransport
import NIOCore

/// What a simulation run does: how many nodes, actors and clients, how long, which
/// timeouts; the faults come from the seed.
public struct SimulationConfiguration: Sendable {
    /// Decides every fault and every delay: the same seed replays the same run.
    public var seed: UInt64
    /// How many nodes the cluster has. Default 3.
    public var nodes: Int = 3
    /// How many actors the clients call (keys `a0`, `a1`, …). Default 3.
    public var actors: Int = 3
    /// How many clients send requests through each node. Default 2.
    public var clientsPerNode: Int = 2
    /// Faults happen during this phase, clients send throughout it.
    public var faultyPhase: Duration = .seconds(30)
    /// Then no faults and no new requests, so every caller must get its answer.
    public var quietPhase: Duration = .seconds(60)
    /// The nodes' `Node.Configuration.failureTimeout`. Default 5 s.
    public var failureTimeout: Duration = .seconds(5)
    /// The nodes' `Node.Configuration.heartbeatInterval`. Default 1 s.
    public var heartbeatInterval: Duration = .seconds(1)
    /// The nodes' `Node.Configuration.commitTimeout`. Default 10 s.
    public var commitTimeout: Duration = .seconds(10)
    /// The nodes' `Node.Cluster.maxHops`. Default 3.
    public var maxHops = 3
    /// The nodes' `Node.Configuration.maxBatch`. Default 8.
    public var maxBatch = 8
    /// The nodes' `Node.Configuration.commitPipelineDepth`. Default 4.
    public var pipelineDepth = 4
    /// The most a node's clock runs fast or slow (a rate: 0.02 is ±2 %).
    public var maxClockDrift = 0.02
    /// Nodes move activations to other nodes (`Node.migrate`) during the faulty phase.
    public var migrations = true
    /// Whether processes die (the runtime engine; without, crashes and drains become
    /// pauses, clients set no alarms, and every cast must be applied or counted as dropped).
    public var crashes = true
    /// Also run a pipeline (the runtime engine, `SimulatedPipeline`): a stage copying a
    /// stream that is split, merged and trimmed, through outages of the stage's sink.
    public var pipelines = false
    /// Where the runtime engine's nodes place actors (`Node.Cluster.placement`);
    /// `nil`: drawn per seed (first receiver, least loaded or consistent hash).
    public var placement: Node.Placement? = .firstReceiver
    /// Keep a line per event (for `dna-simulate --trace`).
    public var trace = false

    /// A run drawn from `seed`, every other setting at its default.
    public init(seed: UInt64) { self.seed = seed }
}

/// An invariant that failed.
public struct SimulationViolation: Sendable, Codable, CustomStringConvertible {
    /// Simulated time, from the start.
    public var time: Duration
    /// Which invariant: `single-owner`, `fenced-write`, `acknowledged-write-lost`,
    /// `failed-but-applied`, `fifo`, `unanswered`.
    public var invariant: String
    /// What was seen, for people.
    public var detail: String

    /// A failure of `invariant` at `time`, described by `detail`.
    public init(time: Duration, invariant: String, detail: String) {
        self.time = time
        self.invariant = invariant
        self.detail = detail
    }

    /// `[time] invariant: detail`.
    public var description: String { "[\(time)] \(invariant): \(detail)" }
}

/// What a simulation run found.
public struct SimulationResult: Sendable, Codable {
    /// The run's seed: with the same configuration, it replays the run.
    public var seed: UInt64
    /// The invariants that failed; empty when the run passed.
    public var violations: [SimulationViolation]
    /// Events run.
    public var events: Int
    /// How much simulated time the run took.
    public var simulatedTime: Duration
    /// One line per event when ``SimulationConfiguration/trace`` is set.
    public var trace: [String]
    /// Counts of what happened (calls answered, faults injected, …).
    public var counters: [String: Int]

    /// A result made of its parts.
    public init(
        seed: UInt64, violations: [SimulationViolation], events: Int, simulatedTime: Duration, trace: [String], counters: [String: Int]
    ) {
        self.seed = seed
        self.violations = violations
        self.events = events
        self.simulatedTime = simulatedTime
        self.trace = trace
        self.counters = counters
    }
}

/// A deterministic, single-threaded simulation of a DNA cluster: N nodes and one store,
/// running the runtime's own decision machines (`NodeLease`, `ActivationStateMachine`,
/// `LinkStateMachine`, `ClaimDecision`, the location cache and the membership view),
/// with faults from a seed: message delays, broken connections, node pauses (also in the
/// middle of a batch or a commit), crashes and restarts, drifting clocks, store stalls,
/// store failures, lost acknowledgements and failing heartbeats. After every event it
/// checks that no node answers for a name it does not hold and no fenced write commits;
/// at the end, that no acknowledged write is lost, nothing reported as failed was applied,
/// writes of each sender were applied in order, and every caller got an answer.
public final class ClusterSimulation {
    let configuration: SimulationConfiguration
    var random: SimulationRandom
    /// Global (the store's) time, nanoseconds.
    var now: Int64 = 0
    private var queue = EventQueue()
    private var nextEventSequence: UInt64 = 0
    private(set) var events = 0
    var violations: [SimulationViolation] = []
    var traceLines: [String] = []
    var counters: [String: Int] = [:]

    let store = SimStore()
    var nodes: [SimNode] = []
    var calls: [Int: CallRecord] = [:]
    var clients: [Int: SimClient] = [:]
    /// Per actor, the write calls answered with success, in the order answered (global
    /// time): a read sent after one must see it.
    var acknowledgedWrites: [ActorID: [(at: Int64, key: String)]] = [:]
    var nextCallID = 1
    var nextConnectionID = 1
    let cluster = "sim"
    var faultsEnd: Int64 { configuration.faultyPhase.wholeNanoseconds }
    var inFaultyPhase: Bool { now < faultsEnd }

    /// A simulation of `configuration`; ``run()`` runs it.
    public init(_ configuration: SimulationConfiguration) {
        self.configuration = configuration
        random = SimulationRandom(seed: configuration.seed)
    }

    /// Runs the whole simulation; stops early at the first violation.
    /// The stream every batch of writes appends its writes to (one partition).
    static let outputStream = StreamName(namespace: "sim", name: "out")

    /// Runs the whole simulation on the calling thread; stops early at the first violation.
    public func run() -> SimulationResult {
        try! store.state.createStream(Self.outputStream, partitions: 1, retention: StreamRetention())
        for slot in 0..<configuration.nodes {
            nodes.append(SimNode(simulation: self, slot: slot))
        }
        for node in nodes { node.boot() }
        scheduleFaults()
        if configuration.migrations { scheduleMigrations() }
        scheduleBatchPauses()
        let end = (configuration.faultyPhase + configuration.quietPhase).wholeNanoseconds
        schedule(at: faultsEnd, "faults end") { [self] in endFaults() }
        while let event = queue.pop(), event.time <= end, violations.isEmpty {
            now = event.time
            if let target = event.node {
                let node = nodes[target.slot]
                guard node.incarnation == target.incarnation, node.isUp else { continue }
                if node.paused {
                    node.deferred.append(event)
                    continue
                }
            }
            events += 1
            if configuration.trace { traceLines.append("\(format(now)) \(event.node.map { "n\($0.slot)" } ?? "--") \(event.label)") }
            event.action()
        }
        if violations.isEmpty { finalChecks() }
        return SimulationResult(
            seed: configuration.seed, violations: violations, events: events, simulatedTime: .nanoseconds(now),
            trace: traceLines, counters: counters)
    }

    // MARK: Events

    struct Target {
        var slot: Int
        var incarnation: Int
    }

    struct Event {
        var time: Int64
        var sequence: UInt64
        var node: Target?
        var label: String
        var action: () -> Void
    }

    /// Schedules `action` at global time `time`. Bound to `node`: dropped if that node
    /// incarnation is gone by then, deferred while it is paused.
    func schedule(at time: Int64, node: Target? = nil, _ label: @autoclosure () -> String, _ action: @escaping () -> Void) {
        nextEventSequence += 1
        queue.push(
            Event(
                time: max(time, now), sequence: nextEventSequence, node: node, label: configuration.trace ? label() : "",
                action: action))
    }

    func reschedule(_ event: Event) {
        var event = event
        nextEventSequence += 1
        event.time = now
        event.sequence = nextEventSequence
        queue.push(event)
    }

    func count(_ name: String, by amount: Int = 1) { counters[name, default: 0] += amount }

    func violation(_ invariant: String, _ detail: String) {
        violations.append(SimulationViolation(time: .nanoseconds(now), invariant: invariant, detail: detail))
    }

    func format(_ time: Int64) -> String {
        let milliseconds = time / 1_000_000
        return "\(milliseconds / 1000).\(String(milliseconds % 1000 + 1000).dropFirst())s"
    }

    func trace(_ line: @autoclosure () -> String) {
        if configuration.trace { traceLines.append("\(format(now))    \(line())") }
    }

    // MARK: Faults

    private func scheduleFaults() {
        let phase = configuration.faultyPhase.wholeNanoseconds
        var time: Int64 = 2_000_000_000
        while true {
            time += random.duration(.milliseconds(200), .milliseconds(2500)).wholeNanoseconds
            guard time < phase else { break }
            let kind = Int.random(in: 0..<100, using: &random)
            let slot = Int.random(in: 0..<configuration.nodes, using: &random)
            switch kind {
            case 0..<14:
                let length = random.duration(.milliseconds(100), .seconds(9))
                schedule(at: time, "fault: pause n\(slot) for \(length)") { [self] in pause(slot, for: length) }
            case 14..<20:
                let down = random.duration(.milliseconds(200), .seconds(4))
                schedule(at: time, "fault: crash n\(slot), restart after \(down)") { [self] in crash(slot, restartAfter: down) }
            case 20..<40:
                schedule(at: time, "fault: break a connection") { [self] in breakConnection() }
            case 40..<52:
                let length = random.duration(.milliseconds(50), .seconds(7))
                schedule(at: time, "fault: store stalls for \(length)") { [self] in
                    count("fault.storeStall")
                    store.stalledUntil = max(store.stalledUntil, now + length.wholeNanoseconds)
                }
            case 52..<62:
                let length = random.duration(.milliseconds(200), .seconds(8))
                schedule(at: time, "fault: heartbeats of n\(slot) fail for \(length)") { [self] in
                    count("fault.heartbeatsFail")
                    nodes[slot].heartbeatsFailUntil = now + length.wholeNanoseconds
                }
            case 62..<72:
                let length = random.duration(.milliseconds(100), .seconds(3))
                schedule(at: time, "fault: store fails operations for \(length)") { [self] in
                    count("fault.storeFailing")
                    store.failingUntil = now + length.wholeNanoseconds
                }
            case 72..<80:
                let length = random.duration(.milliseconds(100), .seconds(3))
                schedule(at: time, "fault: store loses acknowledgements for \(length)") { [self] in
                    count("fault.lostAcks")
                    store.losingAcksUntil = now + length.wholeNanoseconds
                }
            case 80..<90:
                let length = random.duration(.milliseconds(100), .seconds(2))
                schedule(at: time, "fault: slow network for \(length)") { [self] in
                    count("fault.slowNetwork")
                    slowNetworkUntil = now + length.wholeNanoseconds
                }
            case 90..<95:
                // A node's way to the store is flaky: operations time out or crawl.
                let length = random.duration(.seconds(1), .seconds(8))
                let delay = random.duration(.milliseconds(500), .seconds(4))
                schedule(at: time, "fault: store calls of n\(slot) fail or crawl (up to \(delay)) for \(length)") { [self] in
                    count("fault.flakyStoreLink")
                    nodes[slot].storeDelayUntil = now + length.wholeNanoseconds
                    nodes[slot].storeDelay = delay
                    nodes[slot].storeCallsFailUntil = now + length.wholeNanoseconds
                }
            default:
                // A node's way to the store is congested (its connection pool is taken, its
                // link is slow): each of its operations waits up to `delay` before it is sent.
                let length = random.duration(.milliseconds(500), .seconds(6))
                let delay = random.duration(.milliseconds(100), .seconds(3))
                schedule(at: time, "fault: store calls of n\(slot) delayed by up to \(delay) for \(length)") { [self] in
                    count("fault.storeCallsDelayed")
                    nodes[slot].storeDelayUntil = now + length.wholeNanoseconds
                    nodes[slot].storeDelay = delay
                }
            }
        }
    }

    var slowNetworkUntil: Int64 = 0

    /// Moves come from a generator of their own: the faults of a seed stay those of the
    /// same seed without moves.
    var migrationRandom = SimulationRandom(seed: 0)

    private func scheduleMigrations() {
        migrationRandom = SimulationRandom(seed: configuration.seed ^ 0x6D69_6772_6174_6521)
        var time: Int64 = 1_000_000_000
        while true {
            time += migrationRandom.duration(.milliseconds(100), .milliseconds(1500)).wholeNanoseconds
            guard time < faultsEnd else { break }
            let slot = Int.random(in: 0..<configuration.nodes, using: &migrationRandom)
            let draw = Double.random(in: 0..<1, using: &migrationRandom)
            if draw < 0.08 {
                schedule(at: time, "n\(slot) drains") { [self] in nodes[slot].drain() }
            } else if draw < 0.3 {
                schedule(at: time, "n\(slot) rebalances") { [self] in nodes[slot].rebalanceRound() }
            } else {
                schedule(at: time, "n\(slot) moves an activation") { [self] in nodes[slot].migrateSomeActivation() }
            }
        }
    }

    /// Pauses that fall inside a batch, longer than the failure timeout: the batch's
    /// replies are due after another node may have taken the name over. Random pauses
    /// rarely hit a batch (a message takes well under a millisecond); these are armed and
    /// taken by the node's next batch. From a generator of their own, like moves.
    var batchPauseRandom = SimulationRandom(seed: 0)

    private func scheduleBatchPauses() {
        batchPauseRandom = SimulationRandom(seed: configuration.seed ^ 0x7061_7573_6564_2162)
        var time: Int64 = 2_000_000_000
        while true {
            time += batchPauseRandom.duration(.seconds(3), .seconds(10)).wholeNanoseconds
            guard time < faultsEnd else { break }
            let slot = Int.random(in: 0..<configuration.nodes, using: &batchPauseRandom)
            let length = configuration.failureTimeout + batchPauseRandom.duration(.milliseconds(100), .seconds(4))
            schedule(at: time, "fault: n\(slot) pauses for \(length) in its next batch") { [self] in
                nodes[slot].pauseInNextBatch = length
            }
        }
    }

    /// Where a move's outcome goes: counted.
    func migrationReply(actor: ActorID, from: NodeID, to: NodeID) -> MigrationReply {
        MigrationReply { [unowned self] result in
            switch result {
            case .success: count("migration.moved")
            case .failure(let error): count("migration.notMoved.\(error.code)")
            }
        }
    }

    func pause(_ slot: Int, for length: Duration) {
        let node = nodes[slot]
        guard node.isUp, !node.paused else { return }
        count("fault.pause")
        node.paused = true
        schedule(at: now + length.wholeNanoseconds, "resume n\(slot)") { [self] in resume(slot) }
    }

    private func resume(_ slot: Int) {
        let node = nodes[slot]
        guard node.paused else { return }
        node.paused = false
        let deferred = node.deferred
        node.deferred = []
        for event in deferred { reschedule(event) }
    }

    /// A node that drained stops; the slot boots again as a new node a little later.
    func stopAfterDrain(_ slot: Int) {
        let node = nodes[slot]
        guard node.isUp else { return }
        node.crash()
        let down = random.duration(.milliseconds(200), .seconds(2))
        schedule(at: now + down.wholeNanoseconds, "restart n\(slot) after its drain") { [self] in restart(slot) }
    }

    private func crash(_ slot: Int, restartAfter down: Duration) {
        let node = nodes[slot]
        guard node.isUp else { return }
        count("fault.crash")
        node.crash()
        schedule(at: now + down.wholeNanoseconds, "restart n\(slot)") { [self] in restart(slot) }
    }

    /// Boots the slot again, unless it is up already (the end of the faults boots every
    /// node that is down): booting a running node would drop what its connections carry.
    private func restart(_ slot: Int) {
        guard !nodes[slot].isUp else { return }
        nodes[slot].boot()
    }

    private var connections: [SimConnection] = []

    func register(_ connection: SimConnection) {
        connections.removeAll { !$0.alive }
        connections.append(connection)
    }

    private func breakConnection() {
        connections.removeAll { !$0.alive }
        guard let connection = random.pick(connections) else { return }
        count("fault.brokenConnection")
        cut(connection)
    }

    /// A process died: its connections, both ways, are reset.
    func cutConnections(of node: Target) {
        for connection in connections where connection.alive {
            if (connection.from.slot == node.slot && connection.from.incarnation == node.incarnation)
                || (connection.to.slot == node.slot && connection.to.incarnation == node.incarnation)
            {
                cut(connection)
            }
        }
    }

    /// The connection breaks: what is in flight on it is lost, and its client side hears it.
    func cut(_ connection: SimConnection) {
        guard connection.alive else { return }
        connection.alive = false
        let from = connection.from
        schedule(at: now + 100_000, node: from, "connection \(connection.id) to n\(connection.to.slot) broke") { [self] in
            nodes[from.slot].connectionBroke(connection)
        }
    }

    private func endFaults() {
        for node in nodes {
            if node.paused { resume(node.slot) }
            node.heartbeatsFailUntil = 0
            node.storeDelayUntil = 0
            node.storeCallsFailUntil = 0
            if !node.isUp { node.boot() }
        }
        store.stalledUntil = 0
        store.failingUntil = 0
        store.losingAcksUntil = 0
    }

    /// Network latency of one message now.
    func latency() -> Int64 {
        if now < slowNetworkUntil { return random.duration(.milliseconds(5), .milliseconds(400)).wholeNanoseconds }
        return random.duration(.microseconds(100), .milliseconds(3)).wholeNanoseconds
    }

    static func describe<T>(_ result: Result<T, StoreError>) -> String {
        switch result {
        case .success(let value):
            switch value {
            case let outcome as ActivationOutcome:
                if case .granted(let registration, let rows) = outcome {
                    return "granted epoch \(registration.epoch) to \(registration.owner) with \(rows.count) rows"
                }
                return "\(outcome)"
            case let records as [NodeRecord]:
                return records.map { "\($0.id) \($0.state) \($0.heartbeatAgeMilliseconds)ms" }.joined(separator: ", ")
            default:
                return "success"
            }
        case .failure(let error):
            return "\(error)"
        }
    }

    // MARK: Checks

    /// A reply that does not depend on a commit (an immediate one, or one of a batch that
    /// wrote nothing) is being released: the replying activation must hold the name.
    func checkServing(_ node: SimNode, _ registration: Registration, generation: UInt64?, what: String) {
        let name = store.state.names[registration.actor]
        guard name?.owner == registration.owner, name?.epoch == registration.epoch else {
            let lease = node.leaseSnapshot
            let leaseState =
                lease.deadline <= node.localNow
                ? "its lease ran out \(node.localNow - lease.deadline) ago"
                : (lease.generation == generation
                    ? "its lease is valid and of the activation's generation \(lease.generation)"
                    : "its lease is valid but of generation \(lease.generation), the activation's is \(generation.map(String.init) ?? "-")")
            violation(
                "single-owner",
                "\(node.id) answered \(what) for \(registration.actor) at epoch \(registration.epoch), but the store gives it to \(name?.owner?.rawValue ?? "nobody") at epoch \(name?.epoch ?? 0); \(leaseState)"
            )
            return
        }
    }

    private func finalChecks() {
        let definite = Self.certainlyNotApplied
        let applied = store.appliedWrites
        for id in calls.keys.sorted() {
            let call = calls[id]!
            switch call.status {
            case .pending:
                if !call.abandoned {
                    violation("unanswered", "call \(id) (\(call.request)) to \(call.actor) from n\(call.slot) was never answered")
                }
            case .succeeded:
                if let key = call.key, !applied.contains(AppliedWrite(actor: call.actor, key: key)) {
                    violation("acknowledged-write-lost", "\(call.actor) \(key) was acknowledged but is not in the store")
                }
            case .failed(let code, let message):
                if let key = call.key, definite.contains(code), applied.contains(AppliedWrite(actor: call.actor, key: key)) {
                    violation(
                        "failed-but-applied",
                        "\(call.actor) \(key) failed with \(code) (\(message)), which says it did not happen, but it was committed")
                }
            }
        }
        // Exactly once between stages: the records the batches appended are their writes,
        // each once, in commit order — whatever was retried, fenced or moved.
        var appended: [String: [String]] = [:]
        for record in store.state.streams[Self.outputStream]?.records[0] ?? [] {
            appended[String(decoding: record.key, as: UTF8.self), default: []].append(String(decoding: record.value, as: UTF8.self))
        }
        for actor in Set(appended.keys).union(store.appliedInOrder.keys).sorted() where appended[actor] != store.appliedInOrder[actor] {
            let records = appended[actor] ?? []
            violation(
                "exactly-once-output",
                "\(actor): its batches appended \(records.count) record(s) (\(Set(records).count) distinct), its applied writes are \(store.appliedInOrder[actor]?.count ?? 0)"
            )
            return
        }
        count("output.records", by: appended.values.reduce(0) { $0 + $1.count })
        // Writes of each sender to each actor were applied in the order sent.
        for actor in store.commitLog.keys.sorted(by: { $0.description < $1.description }) {
            var last: [String: Int] = [:]
            for write in store.commitLog[actor]! {
                if let previous = last[write.sender], write.sequence <= previous {
                    violation(
                        "fifo",
                        "\(actor): write \(write.sequence) of \(write.sender) was applied after its write \(previous)")
                    return
                }
                last[write.sender] = write.sequence
            }
        }
    }
}

// MARK: - Calls

struct CallRecord {
    enum Status {
        case pending
        case succeeded
        case failed(code: String, message: String)
    }

    var slot: Int
    var actor: ActorID
    var request: SimRequest
    /// The key a write stages.
    var key: String?
    var status = Status.pending
    /// The calling node went away: nobody waits for the answer.
    var abandoned = false
    /// When it was sent (global time).
    var sentAt: Int64 = 0
}

/// What the simulated actors handle.
enum SimRequest: CustomStringConvertible {
    /// Stages a write of `w/SENDER/SEQUENCE/ATTEMPT`; answered once durable.
    case write(sender: String, sequence: Int, attempt: Int)
    /// Answers at once from memory (`reply: .immediate`).
    case read
    /// Answers behind the output gate, writing nothing (a read-only batch).
    case gatedRead

    var key: String? {
        guard case .write(let sender, let sequence, let attempt) = self else { return nil }
        return "w/\(sender)/\(sequence)/\(attempt)"
    }

    var isImmediate: Bool {
        if case .read = self { return true }
        return false
    }

    var description: String {
        switch self {
        case .write(let sender, let sequence, let attempt): "write \(sender)#\(sequence).\(attempt)"
        case .read: "read"
        case .gatedRead: "gated read"
        }
    }
}

/// Where an answer goes.
enum SimReply {
    case client(call: Int)
    case remote(connection: SimConnection, requestID: UInt64)
}

enum SimResult: CustomStringConvertible {
    case success
    /// A read's answer: the writes the actor had when it answered.
    case read(Set<String>)
    case failure(code: String, message: String)

    init(_ error: DNAError) { self = .failure(code: error.code.name, message: error.message) }

    /// A set's order differs from one instance to another: traces show its size.
    var description: String {
        switch self {
        case .success: "success"
        case .read(let seen): "read of \(seen.count) write(s)"
        case .failure(let code, let message): "failure(\(code): \(message))"
        }
    }
}

struct SimEnvelope: OrderedMessage {
    var request: SimRequest
    var reply: SimReply?
    var hops: Int
    var origin: UInt32 = 0
    var sequence: UInt64 = 0
}

struct SimHeld {
    var reply: SimReply
    var result: SimResult
}

/// A request between nodes.
struct SimWireRequest {
    var id: UInt64
    var actor: ActorID
    var request: SimRequest
    var expectsReply: Bool
    var hops: Int
    /// Empty: the sending node.
    var origin: String
    var sequence: UInt64
}

/// One connection from a node's outgoing link to a peer, carrying requests there and
/// answers back, each way in order.
final class SimConnection {
    let id: Int
    let from: ClusterSimulation.Target
    let to: ClusterSimulation.Target
    let attempt: UInt64
    var alive = true
    var lastRequestArrival: Int64 = 0
    var lastResponseArrival: Int64 = 0

    init(id: Int, from: ClusterSimulation.Target, to: ClusterSimulation.Target, attempt: UInt64) {
        self.id = id
        self.from = from
        self.to = to
        self.attempt = attempt
    }
}

// MARK: - Store

struct AppliedWrite: Hashable {
    var actor: ActorID
    var key: String
}

struct LoggedWrite {
    var sender: String
    var sequence: Int
}

/// The store of the simulation: the rules of `InMemoryStoreState` on the global clock,
/// with faults.
final class SimStore {
    var state = InMemoryStoreState()
    var stalledUntil: Int64 = 0
    var failingUntil: Int64 = 0
    var losingAcksUntil: Int64 = 0
    /// Writes in the order they were committed, per actor.
    var commitLog: [ActorID: [LoggedWrite]] = [:]
    var appliedWrites: Set<AppliedWrite> = []
    /// Every write applied, per actor, in commit order (with repeats, if any).
    var appliedInOrder: [String: [String]] = [:]
}

extension ClusterSimulation {
    enum StoreFault {
        case none
        /// Not applied; the caller hears `unavailable`.
        case failed
        /// Applied; the answer is lost (the caller hears `outcomeUnknown`).
        case lostAcknowledgement
    }

    /// Sends an operation from `node` to the store: it is applied after a network delay (or
    /// once a stall ends), and its result comes back to the node after another.
    func storeCall<T>(
        from node: SimNode, _ label: String, failsHeartbeat: Bool = false, timeout: Duration? = nil,
        _ operation: @escaping (inout InMemoryStoreState, DNAInstant) throws(StoreError) -> T,
        completion: @escaping (Result<T, StoreError>) -> Void
    ) {
        let target = node.target
        var completion = completion
        if let timeout {
            // The caller stops waiting at its deadline; the operation may still be applied.
            let once = AnsweredOnce()
            let inner = completion
            completion = { result in
                if once.claim() { inner(result) }
            }
            let timedOut = completion
            schedule(at: now + timeout.wholeNanoseconds, node: target, "\(label) times out") { [self] in
                count("store.timedOut")
                timedOut(.failure(StoreError(.outcomeUnknown, "simulated: no answer within \(timeout)")))
            }
        }
        var sent = now
        if now < node.storeCallsFailUntil && random.chance(0.5) {
            count("store.callFailedOnTheWay")
            schedule(
                at: now + random.duration(.milliseconds(1), node.storeDelay).wholeNanoseconds, node: target, "store call \(label) failed"
            ) {
                completion(.failure(StoreError(.unavailable, "simulated: no answer from the store")))
            }
            return
        }
        if now < node.storeDelayUntil { sent += random.duration(.zero, node.storeDelay).wholeNanoseconds }
        let arrival = max(sent + latency(), store.stalledUntil)
        schedule(at: arrival, "store applies \(label) of \(node.id)") { [self] in
            if now < store.stalledUntil {
                // A stall began after this was sent: it waits for the stall to end.
                schedule(at: store.stalledUntil, "store applies \(label) of \(target.slot) after a stall") { [self] in
                    applyStoreCall(label, target: target, failsHeartbeat: failsHeartbeat, operation, completion: completion)
                }
                return
            }
            applyStoreCall(label, target: target, failsHeartbeat: failsHeartbeat, operation, completion: completion)
        }
    }

    private func applyStoreCall<T>(
        _ label: String, target: Target, failsHeartbeat: Bool,
        _ operation: @escaping (inout InMemoryStoreState, DNAInstant) throws(StoreError) -> T,
        completion: @escaping (Result<T, StoreError>) -> Void
    ) {
        var fault = StoreFault.none
        if failsHeartbeat || (now < store.failingUntil && random.chance(0.5)) {
            fault = .failed
        } else if now < store.losingAcksUntil && random.chance(0.5) {
            fault = .lostAcknowledgement
        }
        var result: Result<T, StoreError>
        if case .failed = fault {
            count("store.failed")
            result = .failure(StoreError(.unavailable, "simulated store failure"))
        } else {
            result = Result { () throws(StoreError) in try operation(&store.state, DNAInstant(nanoseconds: now)) }
            if case .lostAcknowledgement = fault {
                count("store.lostAck")
                result = .failure(StoreError(.outcomeUnknown, "simulated lost acknowledgement"))
            }
        }
        trace("store: \(label) → \(Self.describe(result))")
        schedule(at: now + latency(), node: target, "store answers \(label)") { completion(result) }
    }

    /// A commit, with the writes it applies logged for the checks.
    func storeCommit(from node: SimNode, _ batch: CommitBatch, completion: @escaping (Result<Void, StoreError>) -> Void) {
        storeCall(from: node, "commit \(batch.registration.actor)#\(batch.sequence)", timeout: batch.timeout) {
            [self] (state, _) throws(StoreError) in
            // Checked here too: the store's own rules are what is under test elsewhere.
            let name = state.names[batch.registration.actor]
            guard try state.commit(batch) else { return }
            if name?.owner != batch.registration.owner || name?.epoch != batch.registration.epoch {
                violation("fenced-write", "a batch of \(batch.registration.actor) at a fenced epoch was committed")
            }
            for operation in batch.operations {
                let key = String(decoding: operation.key, as: UTF8.self)
                store.appliedWrites.insert(AppliedWrite(actor: batch.registration.actor, key: key))
                store.appliedInOrder[batch.registration.actor.description, default: []].append(key)
                let parts = key.split(separator: "/")
                if parts.count == 4, let sequence = Int(parts[2]) {
                    store.commitLog[batch.registration.actor, default: []].append(
                        LoggedWrite(sender: String(parts[1]), sequence: sequence))
                }
            }
        } completion: {
            completion($0)
        }
    }
}

/// Whether an answer was given (the first of an answer and a timeout wins).
final class AnsweredOnce {
    private var done = false

    /// `true` the first time only.
    func claim() -> Bool {
        defer { done = true }
        return !done
    }
}

// MARK: - Event queue

/// A binary min-heap of events by (time, sequence).
struct EventQueue {
    private var heap: [ClusterSimulation.Event] = []

    private static func before(_ a: ClusterSimulation.Event, _ b: ClusterSimulation.Event) -> Bool {
        a.time != b.time ? a.time < b.time : a.sequence < b.sequence
    }

    mutating func push(_ event: ClusterSimulation.Event) {
        heap.append(event)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> ClusterSimulation.Event? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && Self.before(heap[left], heap[smallest]) { smallest = left }
            if right < heap.count && Self.before(heap[right], heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
