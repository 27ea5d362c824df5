import DNATransport
import Logging
import CoreMetrics

/// A consumer stage of a pipeline: an actor kind that reads a stream, one activation per
/// partition of it — the actor named by the partition's number, in the stream's namespace.
///
/// The cluster starts the consumers (a leader per stage, itself a DNA actor, wakes those
/// whose partition has records they have not read), and rebalancing and draining move
/// them like any actor. A consumer receives its partition's records in order, in batches
/// of at most ``batchSize``; everything ``process(_:context:)`` does — storage writes,
/// records appended with `ActorContext.append(to:key:value:partition:)` — commits in one
/// transaction with the consumer's checkpoint. A batch whose commit fails is retried as it
/// was; one applied already appends nothing again; a consumer that was fenced stops, and
/// the next activation resumes from the committed checkpoint: so each record appended by a
/// stage is stored exactly once, in order per source partition.
///
/// ```swift
/// final class DeviceTotals: StreamStage {
///     static let kind: ActorKind = "device-totals"
///     static let input = StreamName(name: "readings")
///     let totals: KV<String, Int>
///     init(context: ActorContext) async throws { totals = try context.kv("totals") }
///     func process(_ records: [StreamRecord], context: ActorContext) async throws {
///         for record in records { ... try context.append(to: cityStream, key: city, value: amount) }
///     }
/// }
/// ```
public protocol StreamStage: DurableActor {
    /// The stream this stage consumes.
    static var input: StreamName { get }
    /// The most records handed to ``process(_:context:)`` at once: 500 unless the type says.
    static var batchSize: Int { get }
    /// Whether a partition made by a split or merge is consumed only after its parents are
    /// consumed to their end (`true`, the default: order per key holds across a reshard).
    /// `false` starts children at once — for streams whose partitions only add capacity,
    /// as KCL's users ask (awslabs/amazon-kinesis-client#786).
    static var waitsForParents: Bool { get }
    /// What happens when ``process(_:context:)`` throws.
    static var failurePolicy: StageFailurePolicy { get }

    /// Handles the next records of the partition, in order. Throwing discards what this
    /// call wrote and appended; the same records come again (``failurePolicy``).
    func process(_ records: [StreamRecord], context: ActorContext) async throws
}

/// What a stage does when its handler throws: it retries the same records after a back-off
/// (`firstBackOff`, doubling, at most `maxBackOff`) up to `attempts` times in all, then parks
/// the partition: it stops consuming it, keeps its checkpoint, and says why in
/// `dna stream status` and the metric `dna_stage_parked_total`, until it is resumed
/// (`dna stream resume`, `ActorStore.resumeConsumer(_:of:partition:)`). Records are never
/// skipped.
public struct StageFailurePolicy: Sendable, Equatable {
    /// How many times a batch is tried in all before its partition parks (at least 1).
    public var attempts: Int
    /// The wait before the first retry; it doubles after each further failure.
    public var firstBackOff: Duration
    /// The longest wait between two attempts.
    public var maxBackOff: Duration

    /// A policy of `attempts` tries in all (at least 1), waiting `firstBackOff`, doubling, at
    /// most `maxBackOff`, between them.
    public init(attempts: Int = 5, firstBackOff: Duration = .milliseconds(100), maxBackOff: Duration = .seconds(10)) {
        self.attempts = max(1, attempts)
        self.firstBackOff = firstBackOff
        self.maxBackOff = maxBackOff
    }

    /// A batch whose handler threw and will be retried: its writes and appends are undone,
    /// the failure counted and logged.
    func failed(_ error: any Error, attempt: Int, context: ActorContext) {
        let node = context.node
        context.log.rollbackMessage()
        node.metrics.stageFailures.increment()
        node.logger.warning(
            "stage handler failed; retrying", metadata: ["actor": "\(context.id)", "attempt": "\(attempt)", "error": "\(error)"])
    }

    /// A batch whose handler failed its last attempt: its writes and appends are undone, the
    /// partition parks with `reason`, counted and logged.
    func parked(_ reason: String, context: ActorContext) {
        let node = context.node
        context.log.rollbackMessage()
        node.metrics.stageFailures.increment()
        node.metrics.stageParked.increment()
        node.logger.error("stage partition parked", metadata: ["actor": "\(context.id)", "reason": "\(reason)"])
    }

    /// The wait before attempt `failures + 1`.
    package func backOff(after failures: Int) -> Duration {
        // At most maxBackOff, even below firstBackOff (as documented).
        Backoff(first: min(firstBackOff, maxBackOff), maximum: maxBackOff).delay(afterFailures: failures)
    }
}

extension StreamStage {
    /// 500 records.
    public static var batchSize: Int { 500 }
    /// `true`: a child partition waits for its parents.
    public static var waitsForParents: Bool { true }
    /// The default ``StageFailurePolicy``: 5 attempts, waits doubling from 100 ms to 10 s.
    public static var failurePolicy: StageFailurePolicy { StageFailurePolicy() }
    /// None: a stage needs no handlers to consume its records.
    public static func handlers(_ handlers: inout Handlers<Self>) {}

    /// The consumer of `partition`: its actor's name.
    public static func consumer(of partition: Int) -> ActorID {
        ActorID(namespace: input.namespace, kind: kind.name, key: String(partition))
    }

    static var stageDescription: StageDescription {
        StageDescription(
            kind: kind.name, namespace: input.namespace, waitsForParents: waitsForParents, stream: input, sourcePartitions: nil)
    }

    static var pullEntry: HandlerEntry {
        HandlerEntry(
            timing: .immediate, requestName: StagePull.requestName, codec: RemoteCodec(for: StagePull.self),
            invoke: { actor, _, context in
                await StageConsumer.pull(unsafeDowncast(actor, to: Self.self), context: context)
                return ()
            })
    }
}

/// What a node knows of a stage kind, for its leader: the DNA stream it reads, or how to
/// list the partitions of its external source.
struct StageDescription: Sendable {
    var kind: String
    var namespace: String
    var waitsForParents: Bool
    var stream: StreamName?
    var sourcePartitions: (@Sendable (Node) async throws -> [SourcePartition])?
    /// Registers the stage with its external source, for one that keeps what its readers
    /// have not read (`PartitionSource.register(consumer:)`).
    var registerOnSource: (@Sendable (Node) async throws -> Void)? = nil
}

/// Asks a consumer to read its partition (sent by the consumer to itself, its leader, a
/// parent that finished, and at activation). Repeats are harmless.
struct StagePull: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.stage.pull" }
}

/// A consumer's position, kept by the activation.
final class StageCursor {
    /// The committed checkpoint (runtime module `dna.input`): the next sequence to read;
    /// 0 until the first batch.
    let checkpoint: Value<Int64>
    var machine: StageConsumerMachine<Int64>
    var timer: ScheduledMessage?

    init(checkpoint: Value<Int64>, policy: StageFailurePolicy) {
        self.checkpoint = checkpoint
        machine = StageConsumerMachine(policy: policy, position: checkpoint.value > 0 ? checkpoint.value : nil)
    }

    static let module = "dna.input"
}

enum StageConsumer {
    static func pull<S: StreamStage>(_ stage: S, context: ActorContext) async {
        let node = context.node
        let consumer = S.kind.name
        let cursor: StageCursor
        do {
            cursor = try context.attached {
                StageCursor(checkpoint: try context.runtimeValue(StageCursor.module, default: Int64(0)), policy: S.failurePolicy)
            }
        } catch {
            node.logger.error("stage consumer cannot read its checkpoint", metadata: ["actor": "\(context.id)", "error": "\(error)"])
            return
        }
        guard let partition = Int(context.id.key), partition >= 0 else {
            node.logger.error("a stage consumer is named by its partition's number", metadata: ["actor": "\(context.id)"])
            context.deactivate()
            return
        }
        func again(after wait: Duration) {
            cursor.timer?.cancel()
            cursor.timer = context.schedule(StagePull(), after: wait)
        }
        do {
            var from: Int64
            switch cursor.machine.pull(now: node.clock.now) {
            case .finished: return
            case .wait(let wait):
                again(after: wait)
                return
            case .read(let next): from = next
            case .start, .checkPark:
                var status = try await node.store.streamStatus(S.input)
                if status.consumers[consumer]?[partition] == nil {
                    // Started before its leader registered the stage: from now on retention
                    // keeps what it has not read.
                    _ = try await node.store.registerConsumer(consumer, of: S.input)
                    status = try await node.store.streamStatus(S.input)
                }
                guard let info = status.partitions.first(where: { $0.partition == partition }) else {
                    node.logger.warning("stream has no such partition; consumer stops", metadata: ["actor": "\(context.id)"])
                    context.deactivate()
                    return
                }
                if let reason = status.parked[consumer]?[partition] {
                    again(after: cursor.machine.parkedUntilResumed(reason))
                    return
                }
                if cursor.machine.parked != nil {
                    node.logger.info("parked stage partition resumed", metadata: ["actor": "\(context.id)"])
                    cursor.machine.resumed()
                }
                if S.waitsForParents, !StageOrder.unfinishedParents(of: info, in: status, consumer: consumer).isEmpty {
                    again(after: cursor.machine.parentsUnfinished())
                    return
                }
                // Without a batch committed yet: from where the stream registered it.
                from = cursor.machine.started(at: status.consumers[consumer]?[partition] ?? info.firstSequence)
            }
            let read: Result<[StreamRecord], StoreError>
            do {
                read = .success(try await node.store.readStream(S.input, partition: partition, from: from, limit: S.batchSize))
            } catch {
                read = .failure(error)
            }
            if case .failure(let error) = read, error.code == .invalidArgument,
                let info = try await node.store.streamStatus(S.input).partitions.first(where: { $0.partition == partition }),
                from < info.firstSequence
            {
                try skipDropped(from: from, upTo: info.firstSequence, cursor: cursor, stage: S.self, partition: partition, context: context)
                try context.tell(StagePull())
                return
            }
            let records = try read.get()
            guard !records.isEmpty else {
                let status = try await node.store.streamStatus(S.input)
                let info = status.partitions.first(where: { $0.partition == partition })
                let closed = info.map { !$0.isOpen && from >= $0.nextSequence } ?? false
                switch cursor.machine.readNothing(partitionClosed: closed) {
                case .finish(let next):
                    // Consumed to its end: record it (children wait for that row), wake the children.
                    if status.consumers[consumer]?[partition] != next {
                        try cursor.checkpoint.set(next)
                        context.log.recordProgress(
                            StreamEffects.Progress(consumer: consumer, stream: S.input, partition: partition, next: next))
                    }
                    cursor.machine.finish(at: next)
                    cursor.timer?.cancel()
                    for child in status.partitions where child.parents.contains(partition) {
                        try? node.cast(StagePull(), to: S.consumer(of: child.partition))
                    }
                    context.deactivate()
                case .poll(let wait):
                    // Woken at once by appends committed on this node; polls for the others'.
                    node.pipelines?.waitForAppends(to: S.input, consumer: context.id)
                    again(after: wait)
                case .rest:
                    node.pipelines?.waitForAppends(to: S.input, consumer: context.id)
                }
                return
            }
            cursor.machine.readRecords()
            do {
                try await stage.process(records, context: context)
            } catch {
                let what = "records \(records[0].sequence)-\(records[records.count - 1].sequence)"
                switch cursor.machine.processFailed("\(error)", what: what, now: node.clock.now) {
                case .retry(let wait):
                    S.failurePolicy.failed(error, attempt: cursor.machine.failures, context: context)
                    again(after: wait)
                case .park(let reason):
                    S.failurePolicy.parked(reason, context: context)
                    context.log.recordProgress(
                        StreamEffects.Progress(consumer: consumer, stream: S.input, partition: partition, next: from, parked: reason))
                    again(after: StageConsumerMachine<Int64>.recheck)
                }
                return
            }
            let next = records[records.count - 1].sequence + 1
            cursor.machine.processed(through: next)
            try cursor.checkpoint.set(next)
            context.log.recordProgress(StreamEffects.Progress(consumer: consumer, stream: S.input, partition: partition, next: next))
            node.metrics.stageRecords.increment(by: records.count)
            try context.tell(StagePull())
        } catch {
            node.logger.debug(
                "stage consumer could not read its stream; retrying", metadata: ["actor": "\(context.id)", "error": "\(error)"])
            again(after: StageConsumerMachine<Int64>.recheck)
        }
    }

    /// Retention deleted records before the consumer read them (its stream drops unread
    /// records): it moves on to the first record kept, and the skip is counted
    /// (`dna_stage_records_dropped_total`) and logged, its checkpoint moving with this batch.
    private static func skipDropped<S: StreamStage>(
        from next: Int64, upTo first: Int64, cursor: StageCursor, stage: S.Type, partition: Int, context: ActorContext
    ) throws {
        let node = context.node
        let dropped = first - next
        node.metrics.stageRecordsDropped.increment(by: Int(dropped))
        node.logger.warning(
            "records deleted by retention before the stage read them; it moves on",
            metadata: ["actor": "\(context.id)", "stream": "\(S.input)", "dropped": "\(next)-\(first - 1)", "count": "\(dropped)"])
        cursor.machine.skipped(to: first)
        try cursor.checkpoint.set(first)
        context.log.recordProgress(StreamEffects.Progress(consumer: S.kind.name, stream: S.input, partition: partition, next: first))
    }
}
