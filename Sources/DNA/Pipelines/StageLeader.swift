import Synchronization
import Logging

/// The leader of one stage (named by the stage's kind, in its input stream's namespace):
/// an ordinary DNA actor, so it runs on one node at a time, fenced by its epoch, and a
/// repeating alarm brings it back on another node when its node fails. Every second it
/// reads its stream's partitions and checkpoints and wakes the consumers that should run
/// (``StageOrder/runnable(_:consumer:waitsForParents:)``) — after a split or merge the
/// children, once their parents are finished. It writes nothing but its alarm, and each
/// consumer checks the order itself: a second or stale leader only sends harmless wakes.
final class StageLeader: DurableActor {
    static let kind: ActorKind = "dna.stage-leader"
    static let alarmName = "sync"
    static let interval: Duration = .seconds(1)
    /// The shortest time between two syncs asked for by appends on one node.
    static let pokeInterval: Duration = .milliseconds(50)
    /// Each runnable partition's checkpoint when this leader last woke its consumer: one
    /// that moved on since is running and is not woken again.
    private var wokenAt: [Int: Int64] = [:]

    init(context: ActorContext) async throws {}

    static func handlers(_ handlers: inout Handlers<StageLeader>) {
        handlers.on(StageSync.self, reply: .immediate) { leader, _, context in await leader.sync(context) }
    }

    func alarm(_ name: String, context: ActorContext) async throws { await sync(context) }

    private func sync(_ context: ActorContext) async {
        let node = context.node
        if context.alarm(named: Self.alarmName) == nil {
            try? context.setAlarm(Self.alarmName, after: Self.interval, repeating: Self.interval)
        }
        guard let stage = node.pipelines?.stages[context.id.key] else { return }
        if let stream = stage.stream {
            await sync(stage, stream: stream, context: context)
        } else if let list = stage.sourcePartitions {
            await sync(stage, source: list, context: context)
        }
    }

    private func sync(_ stage: StageDescription, stream: StreamName, context: ActorContext) async {
        let node = context.node
        do {
            var status = try await node.store.streamStatus(stream)
            if status.partitions.contains(where: { status.consumers[stage.kind]?[$0.partition] == nil }) {
                // A stage new to the stream (or to partitions made before it was): from now
                // on retention keeps every record it has not read.
                _ = try await node.store.registerConsumer(stage.kind, of: stream)
                status = try await node.store.streamStatus(stream)
            }
            for partition in StageOrder.runnable(status, consumer: stage.kind, waitsForParents: stage.waitsForParents) {
                let checkpoint = status.consumers[stage.kind]?[partition] ?? 0
                if let woken = wokenAt[partition], woken != checkpoint {
                    wokenAt[partition] = checkpoint
                    continue
                }
                wokenAt[partition] = checkpoint
                try? node.cast(StagePull(), to: ActorID(namespace: stage.namespace, kind: stage.kind, key: String(partition)))
            }
        } catch  where error.code == .notFound {
            // No stream to lead: stop until one exists (the nodes' syncs start it again).
            context.cancelAlarm(Self.alarmName)
            context.deactivate()
        } catch {
            node.logger.debug("stage leader could not read its stream", metadata: ["stage": "\(stage.kind)", "error": "\(error)"])
        }
    }

    /// Partitions of an external source whose consumers finished (closed, read to the end).
    private var finished: Set<String> = []

    /// An external source: the consumers of open partitions are woken; those of closed
    /// ones are asked whether they finished (a consumer checks its parents the same way).
    private func sync(
        _ stage: StageDescription, source: @Sendable (Node) async throws -> [SourcePartition], context: ActorContext
    ) async {
        let node = context.node
        do {
            try await stage.registerOnSource?(node)
            for partition in try await source(node) where !finished.contains(partition.id) {
                let consumer = ActorID(namespace: stage.namespace, kind: stage.kind, key: partition.id)
                if partition.isOpen {
                    try? node.cast(StagePull(), to: consumer)
                    continue
                }
                // One partition's failure leaves the others' syncs alone.
                do {
                    if try await node.stageFinished(consumer) { finished.insert(partition.id) }
                } catch {
                    node.logger.warning(
                        "stage leader could not learn whether a closed partition finished",
                        metadata: ["stage": "\(stage.kind)", "partition": "\(partition.id)", "error": "\(error)"])
                }
            }
        } catch {
            node.logger.debug("stage leader could not list its source", metadata: ["stage": "\(stage.kind)", "error": "\(error)"])
        }
    }

    /// The leader of `stage`.
    static func id(of stage: StageDescription) -> ActorID {
        ActorID(namespace: stage.namespace, kind: kind.name, key: stage.kind)
    }
}

/// Asks a stage's leader to sync now (and to set its alarm, the first time).
struct StageSync: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.stage.sync" }
}

/// Pipelines as a feature of the node (``NodeFeature``): the stages among the node's actor
/// types, their leaders, and the wakes that appends send their consumers.
final class PipelineFeature: NodeFeature {
    /// The stream and source stages among the node's actor types, by kind.
    let stages: [String: StageDescription]
    /// This node's consumers waiting for appends, by stream.
    private let streamWaiters = Mutex<[StreamName: Set<ActorID>]>([:])
    /// When this node last woke each stage's leader after an append.
    private let leaderPokes = Mutex<[String: LeaderPoke]>([:])

    /// `nil` if none of `actors` is a stage.
    init?(actors: [any DurableActor.Type]) {
        var stages: [String: StageDescription] = [:]
        for type in actors {
            if let stage = type as? any StreamStage.Type {
                stages[stage.kind.name] = stage.stageDescription
            } else if let stage = type as? any SourceStage.Type {
                stages[stage.kind.name] = stage.stageDescription
            }
        }
        guard !stages.isEmpty else { return nil }
        self.stages = stages
    }

    var ownActors: [any DurableActor.Type] { [StageLeader.self] }

    func role<A: DurableActor>(of type: A.Type) -> KindRole? {
        if let stage = type as? any StreamStage.Type { return KindRole(handlers: [(ObjectIdentifier(StagePull.self), stage.pullEntry)]) }
        if let stage = type as? any SourceStage.Type { return KindRole(handlers: stage.sourceEntries) }
        return nil
    }

    /// A stage consumer starts reading at once, however it was activated.
    func activationStarted(_ id: ActorID, on node: Node) {
        try? node.cast(StagePull(), to: id)
    }

    /// Asks each stage's leader to sync every two seconds, from every node (while its input
    /// stream exists): this starts the leaders, and brings one back soon after its node
    /// fails (its alarm does too, once the failure is seen, but a fire sent towards the
    /// failed node is only sent again later).
    func run(on node: Node) async {
        while !Task.isCancelled {
            // A stage whose stream does not exist (yet) has no leader running.
            for stage in stages.values {
                if let stream = stage.stream, (try? await node.store.streamStatus(stream)) == nil { continue }
                try? node.cast(StageSync(), to: StageLeader.id(of: stage))
            }
            do { try await node.clock.sleep(for: StageLeader.interval * 2) } catch { return }
        }
    }

    /// A consumer of `stream` found nothing to read: it is pulled when records come.
    func waitForAppends(to stream: StreamName, consumer: ActorID) {
        streamWaiters.withLock { _ = $0[stream, default: []].insert(consumer) }
    }

    /// Records were appended to these streams on this node: wake their waiting consumers,
    /// and (at most every ``StageLeader/pokeInterval`` per stage) the leaders of the stages
    /// that read them, so consumers not running yet start now rather than at the leader's
    /// next sync.
    func appended(to streams: [StreamName], on node: Node) {
        let now = node.clock.now
        let woken = streamWaiters.withLock { waiters -> [ActorID] in
            var woken: [ActorID] = []
            for stream in streams { woken += waiters.removeValue(forKey: stream) ?? [] }
            return woken
        }
        for stage in stages.values where stage.stream.map(streams.contains) == true { pokeLeader(of: stage, now: now, on: node) }
        for consumer in woken { try? node.cast(StagePull(), to: consumer) }
    }

    /// Asks the stage's leader to sync, at most every ``StageLeader/pokeInterval``: a poke
    /// within the interval is sent at its end (so the last appends are never left to the
    /// leader's next timed sync).
    private func pokeLeader(of stage: StageDescription, now: DNAInstant, on node: Node) {
        enum Decision { case now, later(DNAInstant), nothing }
        let decision = leaderPokes.withLock { pokes -> Decision in
            var poke = pokes[stage.kind] ?? LeaderPoke()
            defer { pokes[stage.kind] = poke }
            if let last = poke.last, now - last < StageLeader.pokeInterval {
                if poke.trailing { return .nothing }
                poke.trailing = true
                return .later(last + StageLeader.pokeInterval)
            }
            poke.last = now
            return .now
        }
        switch decision {
        case .nothing: return
        case .now: try? node.cast(StageSync(), to: StageLeader.id(of: stage))
        case .later(let deadline):
            let clock = node.clock
            node.spawn { [weak self, weak node] in
                try? await clock.sleep(until: deadline)
                guard let self, let node else { return }
                self.leaderPokes.withLock { pokes in
                    pokes[stage.kind]?.trailing = false
                    pokes[stage.kind]?.last = clock.now
                }
                try? node.cast(StageSync(), to: StageLeader.id(of: stage))
            }
        }
    }
}

extension Node {
    /// The node's pipelines, if one of its actor types is a stage.
    var pipelines: PipelineFeature? { feature(PipelineFeature.self) }
}

extension Node {
    /// Appends `records` to `stream` (`ActorStore.append(_:to:producer:)`) and wakes this
    /// node's consumer stages waiting for it at once (others poll).
    ///
    /// Idempotent: without a `producer`, one is made for this append (the store forgets it
    /// an hour later), and an append whose answer was lost is sent again with the same
    /// producer, up to three times, so it is stored once; records an earlier attempt stored
    /// come back as `StreamPosition.duplicate`.
    ///
    /// - Throws: `StoreError.Code.outcomeUnknown` if an attempt's answer was lost and no
    ///   later attempt was answered with the positions (the records may be stored: retry
    ///   with the same `producer` and sequences to store them at most once), or what the
    ///   store refused the first attempt with.
    public func append(
        _ records: [StreamAppendRecord], to stream: StreamName, producer: StreamProducer? = nil
    ) async throws(StoreError)
        -> [StreamPosition]
    {
        let producer = producer ?? StreamProducer.forOneAppend(atMilliseconds: clock.wallNow.milliseconds)
        var attempt = 1
        while true {
            do {
                let positions = try await store.append(records, to: stream, producer: producer)
                pipelines?.appended(to: [stream], on: self)
                return positions
            } catch  where error.code == .outcomeUnknown && attempt < 3 {
                logger.warning(
                    "an append's answer was lost; sending it again with the same producer",
                    metadata: ["stream": "\(stream)", "attempt": "\(attempt)"])
                attempt += 1
                do { try await clock.sleep(for: .milliseconds(50 * attempt)) } catch { throw StoreError(.outcomeUnknown, "\(error)") }
            } catch  where attempt > 1 && error.code != .outcomeUnknown {
                // This attempt certainly stored nothing, but an earlier one may have.
                throw StoreError(
                    .outcomeUnknown,
                    "an earlier attempt's answer was lost and this one failed (\(error)): the records may be stored; retry with the same producer"
                )
            }
        }
    }
}

/// When a node last asked a stage's leader to sync, and whether a poke waits for the interval's end.
struct LeaderPoke {
    var last: DNAInstant?
    var trailing = false
}
