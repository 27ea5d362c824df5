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

    init(context: ActorContext) async throws {}

    static func handlers(_ handlers: inout Handlers<StageLeader>) {
        handlers.on(StageSync.self, reply: .immediate) { leader, _, context in await leader.sync(context) }
    }

    func alarm(_ name: String, context: ActorContext) async throws { await sync(context) }

    private func sync(_ context: ActorContext) async {
        let node = context.node
        if context.alarms[Self.alarmName] == nil {
            try? context.setAlarm(Self.alarmName, after: Self.interval, repeating: Self.interval)
        }
        guard let stage = node.stages[context.id.key] else { return }
        do {
            let status = try await node.store.streamStatus(stage.input)
            for partition in StageOrder.runnable(status, consumer: stage.kind, waitsForParents: stage.waitsForParents) {
                try? node.cast(StagePull(), to: ActorID(namespace: stage.input.namespace, kind: stage.kind, key: String(partition)))
            }
        } catch {
            node.logger.debug("stage leader could not read its stream", metadata: ["stage": "\(stage.kind)", "error": "\(error)"])
        }
    }

    /// The leader of `stage`.
    static func id(of stage: StageDescription) -> ActorID {
        ActorID(namespace: stage.input.namespace, kind: kind.name, key: stage.kind)
    }
}

/// Asks a stage's leader to sync now (and to set its alarm, the first time).
struct StageSync: ActorRequest {
    typealias Response = Void
    static var requestName: String { "dna.stage.sync" }
}

extension Node {
    /// Starts each stage's leader (wherever the cluster places it), until one start got
    /// through; the leader's alarm keeps it going from then on.
    func startStageLeaders() async {
        var pending = Array(stages.values)
        while !pending.isEmpty, !Task.isCancelled {
            pending = pending.filter { stage in
                do {
                    try cast(StageSync(), to: StageLeader.id(of: stage))
                    return false
                } catch {
                    return true
                }
            }
            if pending.isEmpty { return }
            try? await clock.sleep(for: .seconds(1))
        }
    }
}
