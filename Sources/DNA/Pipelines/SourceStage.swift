import Logging
import CoreMetrics
/// A consumer stage over a source outside DNA (a `PartitionSource`: a PostgreSQL table
/// with `PostgresTableSource`, a Kafka topic or a Kinesis stream through one of your own):
/// the same leases — one activation per source partition, the actor named by the
/// partition's id in ``namespace`` — and the same checkpoints: the source position is kept
/// in the consumer's own storage and commits in one transaction with what
/// ``process(_:context:)`` writes and appends. So a source stage that appends to a DNA
/// stream brings each source record into it exactly once.
///
/// Its leader lists the source's partitions every second and wakes the consumers of open
/// ones; a child partition is read once each parent's consumer finished (closed and read to
/// its end). A handler that keeps throwing parks its partition as a ``StreamStage`` does;
/// the reason is logged and counted (`dna_stage_parked_total`), and
/// ``Node/resumeSourceStage(_:partition:)`` lets it run again. Partition ids must be valid
/// actor keys (letters, digits, `_ . - :`).
public protocol SourceStage: DurableActor {
    associatedtype Source: PartitionSource

    /// The namespace of the stage's consumers and leader: `"default"` unless the type says.
    static var namespace: String { get }
    /// The source, made on the node where a consumer or the leader runs.
    static func source(on node: Node) throws -> Source
    /// The most records handed to ``process(_:context:)`` at once: 500 unless the type says.
    static var batchSize: Int { get }
    /// Whether a child partition waits for its parents to be read to their end (`true`).
    static var waitsForParents: Bool { get }
    /// What happens when ``process(_:context:)`` throws.
    static var failurePolicy: StageFailurePolicy { get }

    /// Handles the next records of the partition, in order. Throwing discards what this
    /// call wrote and appended; the same records come again (``failurePolicy``).
    func process(_ records: [SourceRecord<Source.Position>], context: ActorContext) async throws
}

extension SourceStage {
    /// `"default"`.
    public static var namespace: String { "default" }
    /// 500 records.
    public static var batchSize: Int { 500 }
    /// `true`: a child partition waits for its parents.
    public static var waitsForParents: Bool { true }
    /// The default ``StageFailurePolicy``: 5 attempts, waits doubling from 100 ms to 10 s.
    public static var failurePolicy: StageFailurePolicy { StageFailurePolicy() }
    /// None: a stage needs no handlers to consume its records.
    public static func handlers(_ handlers: inout Handlers<Self>) {}

    /// The consumer of `partition`: its actor's name.
    public static func consumer(of partition: String) -> ActorID {
        ActorID(namespace: namespace, kind: kind.name, key: partition)
    }

    static var stageDescription: StageDescription {
        StageDescription(
            kind: kind.name, namespace: namespace, waitsForParents: waitsForParents, stream: nil,
            sourcePartitions: { node in try await source(on: node).partitions() },
            registerOnSource: { node in try await source(on: node).register(consumer: kind.name) })
    }

    static var sourceEntries: [(ObjectIdentifier, HandlerEntry)] {
        [
            (
                ObjectIdentifier(StagePull.self),
                HandlerEntry(
                    timing: .immediate, requestName: StagePull.requestName, codec: RemoteCodec(for: StagePull.self),
                    invoke: { actor, _, context in
                        await SourceConsumer.pull(unsafeDowncast(actor, to: Self.self), context: context)
                        return ()
                    })
            ),
            (
                ObjectIdentifier(StageFinished.self),
                HandlerEntry(
                    timing: .afterCommit, requestName: StageFinished.requestName, codec: RemoteCodec(for: StageFinished.self),
                    invoke: { actor, _, context in try await SourceConsumer.finished(unsafeDowncast(actor, to: Self.self), context: context)
                    })
            ),
            (
                ObjectIdentifier(StageResume.self),
                HandlerEntry(
                    timing: .afterCommit, requestName: StageResume.requestName, codec: RemoteCodec(for: StageResume.self),
                    invoke: { actor, _, context in try SourceConsumer.resume(unsafeDowncast(actor, to: Self.self), context: context) })
            ),
        ]
    }
}

/// Asks a source stage's consumer whether its partition is finished (closed and read to
/// its end); it finds out if it does not know yet.
struct StageFinished: ActorRequest {
    typealias Response = Bool
    static var requestName: String { "dna.stage.finished" }
}

/// Lets a source stage's parked consumer run again.
struct StageResume: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.stage.resume" }
}

/// A source consumer's stored position.
struct SourceCheckpoint<Position: Codable & Sendable>: Codable, Sendable {
    /// The last position consumed; `nil` before the first batch.
    var position: Position?
    var finished = false
    var parked: String?
}

final class SourceCursor<S: SourceStage> {
    let checkpoint: Value<SourceCheckpoint<S.Source.Position>>
    let source: S.Source
    /// Its position: the last one read (`nil` until it knows where it starts).
    var machine: StageConsumerMachine<S.Source.Position>
    var timer: ScheduledMessage?

    init(checkpoint: Value<SourceCheckpoint<S.Source.Position>>, source: S.Source) {
        self.checkpoint = checkpoint
        self.source = source
        machine = StageConsumerMachine(
            policy: S.failurePolicy, position: checkpoint.value.position, finished: checkpoint.value.finished,
            parked: checkpoint.value.parked)
    }
}

extension Node {
    /// Lets the parked partition of a source stage run again (see ``SourceStage``).
    public func resumeSourceStage<S: SourceStage>(_ stage: S.Type, partition: String) async throws {
        try await ref(S.self, key: partition, namespace: S.namespace).call(StageResume())
    }

    /// Whether the consumer `id` of a source stage finished its partition.
    func stageFinished(_ id: ActorID) async throws -> Bool {
        guard let kind = kinds[id.kind] else { throw DNAError(.unknownActorKind, "no actor kind '\(id.kind)' on this node") }
        return try await ActorTarget(id: id, node: self, kind: kind).call(StageFinished(), trace: nil)
    }
}

enum SourceConsumer {
    static func cursor<S: SourceStage>(_ stage: S, context: ActorContext) throws -> SourceCursor<S> {
        try context.attached {
            SourceCursor<S>(
                checkpoint: try context.runtimeValue(StageCursor.module, default: SourceCheckpoint<S.Source.Position>()),
                source: try S.source(on: context.node))
        }
    }

    static func finished<S: SourceStage>(_ stage: S, context: ActorContext) async throws -> Bool {
        let cursor = try cursor(stage, context: context)
        if cursor.checkpoint.value.finished { return true }
        let partition = context.id.key
        guard let info = try await cursor.source.partitions().first(where: { $0.id == partition }), !info.isOpen else { return false }
        // A partition that never held a record is read "to its end" before its parents are:
        // it is finished only once they are (as ``StageOrder/isFinished(_:in:consumer:)``).
        if S.waitsForParents {
            for parent in info.parents where !(try await context.node.stageFinished(S.consumer(of: parent))) { return false }
        }
        let position = try await startPosition(cursor, partition: partition)
        let next: [SourceRecord<S.Source.Position>]
        do {
            next = try await cursor.source.read(partition, after: position, limit: 1)
        } catch {
            // Deleted before the stage read it: the pull moves on (and records the skip).
            guard let start = try? await cursor.source.start(of: partition), position < start else { throw error }
            try? context.tell(StagePull())
            return false
        }
        guard next.isEmpty else {
            try? context.tell(StagePull())
            return false
        }
        var value = cursor.checkpoint.value
        value.finished = true
        value.position = position
        try cursor.checkpoint.set(value)
        cursor.machine.finish(at: position)
        recordProgress(position, cursor: cursor, context: context)
        return true
    }

    /// Records after `position` up to `start` were deleted before the stage read them: it
    /// moves on, the skip logged and (for integer positions) counted in
    /// `dna_stage_records_dropped_total`, its position moving with this batch.
    private static func skipDropped<S: SourceStage>(
        after position: S.Source.Position, upTo start: S.Source.Position, cursor: SourceCursor<S>, context: ActorContext
    ) throws {
        let node = context.node
        if let from = position as? Int64, let to = start as? Int64 { node.metrics.stageRecordsDropped.increment(by: Int(to - from)) }
        node.logger.warning(
            "records deleted from the source before the stage read them; it moves on",
            metadata: ["actor": "\(context.id)", "after": "\(position)", "through": "\(start)"])
        cursor.machine.skipped(to: start)
        var value = cursor.checkpoint.value
        value.position = start
        try cursor.checkpoint.set(value)
        recordProgress(start, cursor: cursor, context: context)
    }

    /// Tells a source that keeps records for its readers how far the stage read, with the
    /// batch (`PartitionSource.progress(of:partition:after:)`).
    private static func recordProgress<S: SourceStage>(_ position: S.Source.Position, cursor: SourceCursor<S>, context: ActorContext) {
        if let progress = cursor.source.progress(of: S.kind.name, partition: context.id.key, after: position) {
            context.log.recordProgress(progress)
        }
    }

    static func resume<S: SourceStage>(_ stage: S, context: ActorContext) throws {
        let cursor = try cursor(stage, context: context)
        // A partition that is not parked keeps its back-off.
        guard cursor.machine.parked != nil || cursor.checkpoint.value.parked != nil else { return }
        cursor.machine.resumed()
        guard cursor.checkpoint.value.parked != nil else {
            try context.tell(StagePull())
            return
        }
        var value = cursor.checkpoint.value
        value.parked = nil
        try cursor.checkpoint.set(value)
        try context.tell(StagePull())
    }

    /// Where the consumer is, or the partition's start if it has not read yet.
    private static func startPosition<S: SourceStage>(_ cursor: SourceCursor<S>, partition: String) async throws -> S.Source.Position {
        if let position = cursor.machine.position { return position }
        return try await cursor.source.start(of: partition)
    }

    static func pull<S: SourceStage>(_ stage: S, context: ActorContext) async {
        let node = context.node
        let cursor: SourceCursor<S>
        do { cursor = try self.cursor(stage, context: context) } catch {
            node.logger.error("source stage consumer cannot start", metadata: ["actor": "\(context.id)", "error": "\(error)"])
            context.deactivate()
            return
        }
        let partition = context.id.key
        func again(after wait: Duration) {
            cursor.timer?.cancel()
            cursor.timer = context.schedule(StagePull(), after: wait)
        }
        do {
            let position: S.Source.Position
            switch cursor.machine.pull(now: node.clock.now) {
            case .finished:
                context.deactivate()
                return
            case .checkPark:
                // Its resume message lets it run again; a park that never committed is none.
                guard cursor.checkpoint.value.parked == nil else { return }
                cursor.machine.resumed()
                try context.tell(StagePull())
                return
            case .wait(let wait):
                again(after: wait)
                return
            case .read(let from): position = from
            case .start:
                if S.waitsForParents {
                    guard let info = try await cursor.source.partitions().first(where: { $0.id == partition }) else {
                        node.logger.warning("source has no such partition; consumer stops", metadata: ["actor": "\(context.id)"])
                        context.deactivate()
                        return
                    }
                    for parent in info.parents where !(try await node.stageFinished(S.consumer(of: parent))) {
                        again(after: cursor.machine.parentsUnfinished())
                        return
                    }
                }
                let start = try await startPosition(cursor, partition: partition)
                position = cursor.machine.started(at: start)
            }
            let records: [SourceRecord<S.Source.Position>]
            do {
                records = try await cursor.source.read(partition, after: position, limit: S.batchSize)
            } catch {
                // Deleted before the stage read it (a DNA stream that drops unread records):
                // it moves on from the first record kept.
                guard let start = try? await cursor.source.start(of: partition), position < start else { throw error }
                try skipDropped(after: position, upTo: start, cursor: cursor, context: context)
                try context.tell(StagePull())
                return
            }
            guard !records.isEmpty else {
                let partitions = try await cursor.source.partitions()
                let closed = partitions.first(where: { $0.id == partition }).map { !$0.isOpen } ?? false
                if closed, !(try await cursor.source.read(partition, after: position, limit: 1)).isEmpty {
                    // Records came between the read and the close: the partition ends after them.
                    try context.tell(StagePull())
                    return
                }
                switch cursor.machine.readNothing(partitionClosed: closed) {
                case .finish(let end):
                    var value = cursor.checkpoint.value
                    value.finished = true
                    value.position = end
                    try cursor.checkpoint.set(value)
                    cursor.machine.finish(at: end)
                    recordProgress(end, cursor: cursor, context: context)
                    cursor.timer?.cancel()
                    for child in partitions where child.parents.contains(partition) {
                        try? node.cast(StagePull(), to: S.consumer(of: child.id))
                    }
                    context.deactivate()
                case .poll(let wait): again(after: wait)
                case .rest: break
                }
                return
            }
            cursor.machine.readRecords()
            do {
                try await stage.process(records, context: context)
            } catch {
                let what = "\(records.count) record(s) after \(position)"
                switch cursor.machine.processFailed("\(error)", what: what, now: node.clock.now) {
                case .retry(let wait):
                    S.failurePolicy.failed(error, attempt: cursor.machine.failures, context: context)
                    again(after: wait)
                case .park(let reason):
                    S.failurePolicy.parked(reason, context: context)
                    var value = cursor.checkpoint.value
                    value.parked = reason
                    try cursor.checkpoint.set(value)
                }
                return
            }
            let last = records[records.count - 1].position
            cursor.machine.processed(through: last)
            var value = cursor.checkpoint.value
            value.position = last
            try cursor.checkpoint.set(value)
            recordProgress(last, cursor: cursor, context: context)
            node.metrics.stageRecords.increment(by: records.count)
            try context.tell(StagePull())
        } catch {
            node.logger.debug(
                "source stage consumer could not read its source; retrying", metadata: ["actor": "\(context.id)", "error": "\(error)"])
            again(after: .seconds(1))
        }
    }
}
