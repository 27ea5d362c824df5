import DNA
import DNAStore

/// The stream stage the runtime simulation runs (with ``SimulationConfiguration/pipelines``):
/// it reads `sim/input` and appends every record, key and value unchanged, to `sim/output`
/// in the batch that moves its checkpoint, so the output must hold each input record once,
/// in order per key. What it writes to fails while the simulation's sink is down, so its
/// retries, back-off and parking run.
final class SimulatedStage: StreamStage {
    static let kind: ActorKind = "copier"
    static let input = SimulatedPipeline.input
    static var batchSize: Int { 16 }

    private let attempts = StageAttempts()

    init(context: ActorContext) async throws {}

    func process(_ records: [StreamRecord], context: ActorContext) async throws {
        try attempts.attempt(records.map { String(decoding: $0.value, as: UTF8.self) }, policy: Self.failurePolicy, context: context)
        for record in records { try context.append(to: SimulatedPipeline.output, key: record.key, value: record.value) }
    }
}

/// The same copy as a source stage over ``StreamSource`` (its own consumers, leader and
/// checkpoints in its actors' storage, retention kept off its unread records by the
/// stream's registration), to `sim/source-output`.
final class SimulatedSourceStage: SourceStage {
    static let kind: ActorKind = "source-copier"
    static var namespace: String { RuntimeSimulation.actorNamespace }
    static var batchSize: Int { 16 }

    static func source(on node: Node) throws -> StreamSource { StreamSource(store: node.store, stream: SimulatedPipeline.input) }

    private let attempts = StageAttempts()

    init(context: ActorContext) async throws {}

    func process(_ records: [SourceRecord<Int64>], context: ActorContext) async throws {
        try attempts.attempt(records.map { String(decoding: $0.value, as: UTF8.self) }, policy: Self.failurePolicy, context: context)
        for record in records { try context.append(to: SimulatedPipeline.sourceOutput, key: record.key, value: record.value) }
    }
}

/// One stage activation's failed attempts at its current batch, and when the last one
/// failed (the simulation's time): a retry must wait out the back-off.
final class StageAttempts: @unchecked Sendable {
    struct SinkDown: Error {}

    private var failures = 0
    private var lastFailure: Int64 = 0

    /// Checks the back-off before this attempt; throws while the sink is down.
    func attempt(_ values: [String], policy: StageFailurePolicy, context: ActorContext) throws {
        guard let simulation = context.node.configuration.simulated?.harness as? RuntimeSimulation, let pipeline = simulation.pipeline
        else {
            return
        }
        let now = simulation.now
        if failures > 0, failures < policy.attempts {
            // The node's clock may run 2 % fast: its wait is at least 0.97 of the back-off here.
            let backOff = policy.backOff(after: failures)
            if Double(now - lastFailure) < Double(backOff.wholeNanoseconds) * 0.97 {
                simulation.violation(
                    "stage retried before its back-off",
                    "\(context.id) retried \(values.first ?? "")… \(Duration.nanoseconds(now - lastFailure)) after failure \(failures), before its back-off of \(backOff)"
                )
            }
        }
        if pipeline.sinkIsDown {
            failures = failures >= policy.attempts ? 1 : failures + 1
            lastFailure = now
            simulation.trace("\(context.id) on \(context.nodeID): sink down, attempt \(failures) at \(values.first ?? "")…")
            if failures == policy.attempts { pipeline.parked(context.id) }
            throw SinkDown()
        }
        failures = 0
        simulation.trace("\(context.id) on \(context.nodeID) copies \(values.joined(separator: " "))")
    }
}

/// The pipeline of a runtime simulation: clients append to a stream with a small size
/// retention that is applied every 2 s; the stream is split and merged while a
/// ``SimulatedStage`` copies it, on whatever nodes hold its consumers and its leader, through
/// crashes, moves and outages of its sink (50 ms – 1 s, shorter than the stage's default
/// back-off takes to park a partition). At the end every acknowledged append must be in the
/// output exactly once, in the order of appends per key that did not overlap; no append must
/// be there twice, nor one reported as certainly not stored.
///
/// Its faults and choices come from a generator of its own, so a seed's other events are
/// those the seed makes without it, until the pipeline's load changes their timing.
final class SimulatedPipeline: @unchecked Sendable {
    static let input = StreamName(namespace: RuntimeSimulation.actorNamespace, name: "input")
    static let output = StreamName(namespace: RuntimeSimulation.actorNamespace, name: "output")
    static let sourceOutput = StreamName(namespace: RuntimeSimulation.actorNamespace, name: "source-output")
    /// About a dozen records a partition: retention trims behind the stage all the time.
    static let retention = StreamRetention(maxBytesPerPartition: 120)
    static let keys = 6

    struct Append {
        var key: String
        var value: String
        var slot: Int
        var invoked: Int64
        var responded: Int64?
        /// `nil` while unanswered; the error's code when it failed.
        var failure: String?
        var acknowledged = false
    }

    unowned let simulation: RuntimeSimulation
    var random: SimulationRandom
    var appends: [Append] = []
    private var sinkDownUntil: Int64 = 0
    private var nextValue = 1
    /// When both outputs first held every acknowledged append: the run ends 2 s later (a
    /// straggler's late copy would show as a double).
    private var settledAt: Int64?

    init(simulation: RuntimeSimulation) {
        self.simulation = simulation
        random = SimulationRandom(seed: simulation.configuration.seed ^ 0x7069_7065_6C69_6E65)
    }

    var sinkIsDown: Bool { simulation.now < sinkDownUntil }

    /// Makes the streams (before any node boots) and schedules the pipeline's faults.
    func start(faultsEnd: Int64) {
        simulation.database.withState { state in
            try? state.createStream(Self.input, partitions: 2, retention: Self.retention)
            try? state.createStream(Self.output, partitions: 1, retention: StreamRetention())
            try? state.createStream(Self.sourceOutput, partitions: 1, retention: StreamRetention())
        }
        var time: Int64 = 1_000_000_000
        while true {
            time += random.duration(.seconds(2), .seconds(6)).wholeNanoseconds
            guard time < faultsEnd else { break }
            let length = random.duration(.milliseconds(50), .seconds(1)).wholeNanoseconds
            let reshard = random.chance(0.5)
            let merge = random.chance(0.4)
            let pick = Int(random.next() % 1_000)
            simulation.schedule(at: time, "pipeline fault") { [self] in
                sinkDownUntil = max(sinkDownUntil, simulation.now + length)
                simulation.count("fault.sinkDown")
                simulation.trace("the stage's sink is down for \(Duration.nanoseconds(length))")
                if reshard { self.reshard(merge: merge, pick: pick) }
            }
        }
        // After the faults an operator resumes what parked (`dna stream resume`): a park
        // needs every attempt to meet an outage, which pauses and slow stores can line up.
        for second in 0..<30 {
            simulation.schedule(at: faultsEnd + Int64(second) * 2_000_000_000, "operator resumes") { [self] in resumeParked() }
        }
    }

    /// A stage's consumer failed its last attempt: it parks.
    func parked(_ consumer: ActorID) { simulation.count("pipeline.parked") }

    private func resumeParked() {
        let resumed = simulation.database.withState { state in
            (try? state.resumeConsumer(SimulatedStage.kind.name, of: Self.input, partition: nil)) ?? 0
        }
        if resumed > 0 {
            simulation.count("pipeline.resumedByOperator", by: resumed)
            simulation.trace("the operator resumes \(resumed) parked partition(s)")
        }
        // A source stage keeps its park in its consumers' storage: every partition is resumed
        // through a node (`Node.resumeSourceStage`; one that is not parked keeps its back-off).
        guard let (node, executor) = simulation.liveNode() else { return }
        let partitions = simulation.database.withState { $0.streams[Self.input]?.partitions.map(\.partition) ?? [] }
        for partition in partitions {
            Task(executorPreference: executor) { [self] in
                do {
                    try await node.resumeSourceStage(SimulatedSourceStage.self, partition: String(partition))
                } catch {
                    simulation.count("pipeline.sourceResumeFailed")
                }
            }
        }
    }

    /// A split of an open partition, or a merge of two adjacent ones (as `dna stream
    /// reshard` does, straight in the store).
    private func reshard(merge: Bool, pick: Int) {
        let result: Result<[Int], StoreError> = simulation.database.withState { state in
            guard let open = state.streams[Self.input]?.partitions.filter(\.isOpen).sorted(by: { $0.keyLow < $1.keyLow }), !open.isEmpty
            else { return .success([]) }
            let operation: StreamReshard =
                merge && open.count >= 2
                ? .merge(open[pick % (open.count - 1)].partition, open[pick % (open.count - 1) + 1].partition)
                : .split(open[pick % open.count].partition)
            // At most 8 open partitions: splits stop there.
            if case .split = operation, open.count >= 8 { return .success([]) }
            do throws(StoreError) { return .success(try state.reshard(Self.input, operation)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let opened) where !opened.isEmpty:
            simulation.count("pipeline.reshard")
            simulation.trace("\(Self.input) reshards: partitions \(opened) open")
        case .success: break
        case .failure(let error): simulation.count("pipeline.reshard.refused.\(error.code)")
        }
    }

    /// One client's append of one record, through `node`.
    func append(through node: Node, slot: Int) async {
        let key = "k\(Int.random(in: 0..<Self.keys, using: &random))"
        let value = "p\(nextValue)"
        nextValue += 1
        let index = appends.count
        appends.append(Append(key: key, value: value, slot: slot, invoked: simulation.now))
        do {
            _ = try await node.append([StreamAppendRecord(key: Array(key.utf8), value: Array(value.utf8))], to: Self.input)
            appends[index].acknowledged = true
            simulation.count("pipeline.append.ok")
        } catch {
            appends[index].failure = "\(error.code)"
            simulation.count("pipeline.append.failed.\(error.code)")
        }
        appends[index].responded = simulation.now
        simulation.trace("\(Self.input): append \(value) to \(key) → \(appends[index].failure ?? "ok")")
    }

    /// An output's values, in order.
    private func outputValues(_ output: StreamName) -> [(key: String, value: String)] {
        simulation.database.withState { state in
            (state.streams[output]?.records[0] ?? []).map {
                (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self))
            }
        }
    }

    /// Whether every acknowledged append reached both outputs.
    func isSettled() -> Bool {
        if let settledAt { return simulation.now >= settledAt + 2_000_000_000 }
        let copied = [Self.output, Self.sourceOutput].allSatisfy { output in
            let copied = Set(outputValues(output).map(\.value))
            return appends.allSatisfy { !$0.acknowledged || copied.contains($0.value) }
        }
        if copied { settledAt = simulation.now }
        return false
    }

    /// What the stage's consumers and the stream say, for a violation's detail.
    private func streamState(consumer: String) -> String {
        simulation.database.withState { state in
            guard let stream = state.streams[Self.input] else { return "no stream" }
            let partitions = stream.partitions.map {
                "p\($0.partition)\($0.isOpen ? "" : " closed")[\($0.firstSequence)..<\($0.nextSequence)]"
            }
            let checkpoints = (stream.consumers[consumer] ?? [:]).sorted { $0.key < $1.key }.map { "p\($0.key)@\($0.value)" }
            let parked = (stream.parked[consumer] ?? [:]).sorted { $0.key < $1.key }.map { "p\($0.key): \($0.value)" }
            return "partitions \(partitions.joined(separator: ", ")); checkpoints \(checkpoints.joined(separator: ", ")); parked \(parked)"
        }
    }

    /// The end-to-end checks, once the run is over: `nil` when they hold.
    func firstViolation() -> (invariant: String, detail: String)? {
        firstViolation(in: Self.output, consumer: SimulatedStage.kind.name)
            ?? firstViolation(in: Self.sourceOutput, consumer: SimulatedSourceStage.kind.name)
    }

    private func firstViolation(in stream: StreamName, consumer: String) -> (invariant: String, detail: String)? {
        let output = outputValues(stream)
        var position: [String: Int] = [:]
        for (index, record) in output.enumerated() {
            if position[record.value] != nil { return ("pipeline record doubled", "\(record.value) is in \(stream) twice") }
            position[record.value] = index
        }
        for append in appends {
            let copied = position[append.value] != nil
            if append.acknowledged && !copied {
                return (
                    "pipeline record lost",
                    "\(append.value) (key \(append.key), acknowledged) never reached \(stream); \(streamState(consumer: consumer))"
                )
            }
            if let failure = append.failure, copied, failure != "\(StoreError.Code.outcomeUnknown)" {
                return ("pipeline failed but applied", "\(append.value) was reported not stored (\(failure)) and reached \(stream)")
            }
        }
        // Per key, an append acknowledged before another began comes out first.
        let byKey = Dictionary(grouping: appends.filter { position[$0.value] != nil }, by: \.key)
        for (key, list) in byKey {
            for first in list {
                guard first.acknowledged, let done = first.responded else { continue }
                for later in list where later.invoked > done && position[later.value]! < position[first.value]! {
                    return (
                        "pipeline out of order",
                        "\(stream), \(key): \(later.value) (sent after \(first.value) was acknowledged) came out before it"
                    )
                }
            }
        }
        simulation.count(stream == Self.output ? "pipeline.copied" : "pipeline.sourceCopied", by: output.count)
        return nil
    }
}
