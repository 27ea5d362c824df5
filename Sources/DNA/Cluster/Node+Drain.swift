import DNAStore
import Synchronization
import Logging

/// What a drain did.
public struct DrainReport: Sendable, Equatable {
    /// Activations handed over to other nodes.
    public var moved: Int
    /// Activations stopped here instead (types that are not movable, nodes that place by
    /// consistent hash, moves the store refused): their names were given back, and their
    /// next message activates them on another node.
    public var stopped: Int
    /// From the start of the drain until no activation was left.
    public var duration: Duration
}

extension Node {
    /// Drains the node and then stops it: it reports `draining` (other nodes send it no
    /// new actors), takes no new names itself (a message for an actor it does not host goes
    /// to another live node), moves every activation to the other live nodes — each its fair
    /// share, by ``RebalancePlanner`` — as ``migrate(_:to:)`` does, so that callers see no
    /// error, and then leaves the cluster as ``shutdown()`` does.
    ///
    /// - Throws: ``DNAError/Code/noEligibleNode`` if no other live node takes actors (the
    ///   last node cannot be drained; nothing changes), ``DNAError/Code/invalidArgument``
    ///   for a node without a cluster transport, ``DNAError/Code/nodeStopped`` if the node
    ///   is not running.
    @discardableResult
    public func drain() async throws(DNAError) -> DrainReport {
        guard isRunning else { throw DNAError(.nodeStopped, "node \(id) is not running") }
        guard transport != nil else { throw DNAError(.invalidArgument, "a node without a cluster transport has nowhere to move actors") }
        try? await refreshMembers()
        guard !membership.servingNodes(except: id).isEmpty else {
            throw DNAError(
                .noEligibleNode,
                "node \(id) is the last live node of cluster \(configuration.clusterName) taking actors: nowhere to drain to")
        }
        let report = await moveActivationsAway()
        await shutdown()
        return report
    }

    /// Marks the node draining and moves its activations away (stopping those that cannot
    /// move), until none is left or no other node takes actors.
    func moveActivationsAway() async -> DrainReport {
        let start = clock.now
        updateLife { $0.beginDraining() }
        noteSelf(.draining, .nodeDraining(id))
        // The others hear of it now, not at the next heartbeat.
        do { try await renewLease(state: .draining) } catch {
            logger.warning("could not record draining", metadata: ["error": "\(error)"])
        }
        var report = DrainReport(moved: 0, stopped: 0, duration: .zero)
        let rounds = DrainTiming.Rounds(start: clock.now, failureTimeout: configuration.failureTimeout)
        rounds: while true {
            let remaining = directory.withLock { Array($0.activations.values) }
            let others = membership.servingNodes(except: id)
            switch rounds.next(now: clock.now, remaining: remaining.count, otherNodes: others.count) {
            case .done: break rounds
            case .noOtherNode:
                logger.warning("no live node takes actors: the rest stay until the node stops", metadata: ["left": "\(remaining.count)"])
                break rounds
            case .timedOut:
                logger.warning("drain timed out: the rest stay until the node stops", metadata: ["left": "\(remaining.count)"])
                break rounds
            case .move:
                let targets = Self.drainTargets(count: remaining.count, this: id, others: others)
                let outcomes = await moveConcurrently(remaining.indices.map { (remaining[$0], targets[$0 % targets.count]) })
                let moved = outcomes.filter { $0 == .moved }.count
                let stopped = outcomes.filter { $0 == .stopped }.count
                report.moved += moved
                report.stopped += stopped
                if let pause = rounds.pause(afterRoundMoving: moved, stopping: stopped) {
                    // Activations still claiming their names: they can move once active.
                    try? await clock.sleep(for: pause)
                }
            }
        }
        report.duration = clock.now - start
        return report
    }

    /// Each other node's fair share of `count` activations (the planner's moves for a
    /// draining node), as a list of targets.
    package static func drainTargets(count: Int, this: NodeID, others: [(id: NodeID, activations: Int)]) -> [NodeID] {
        let loads =
            [RebalancePlanner.NodeLoad(id: this, activations: count, role: .draining)]
            + others.map { RebalancePlanner.NodeLoad(id: $0.id, activations: $0.activations) }
        guard let plan = try? RebalancePlanner.plan(nodes: loads, limits: .init(maxMoves: .max, maxFraction: 1)), !plan.moves.isEmpty
        else { return others.map(\.id) }
        return plan.moves.flatMap { Array(repeating: $0.to, count: $0.count) }
    }

    enum DrainOutcome { case moved, stopped, notYet }

    /// Moves each activation to its target, a few at a time (each is a round trip to the
    /// store); with `stopUnmovable`, those that cannot move are stopped instead.
    func moveConcurrently(_ moves: [(any AnyActivation, NodeID)], stopUnmovable: Bool = true) async -> [DrainOutcome] {
        await withTaskGroup(of: DrainOutcome.self, returning: [DrainOutcome].self) { group in
            var next = 0
            func add() {
                let (activation, target) = moves[next]
                next += 1
                group.addTask { await self.moveAway(activation, to: target, stopUnmovable: stopUnmovable) }
            }
            for _ in 0..<min(64, moves.count) { add() }
            var outcomes: [DrainOutcome] = []
            for await outcome in group {
                outcomes.append(outcome)
                if next < moves.count { add() }
            }
            return outcomes
        }
    }

    private func moveAway(_ activation: any AnyActivation, to plannedTarget: NodeID, stopUnmovable: Bool) async -> DrainOutcome {
        let kind = kinds[activation.id.kind]
        var target: NodeID? = plannedTarget
        if case .pinned(let label) = kind?.placement, !membership.labels(of: plannedTarget).contains(label) {
            // Pinned to a label: another node carrying it, if any.
            target = membership.placement(of: activation.id, excluding: id, label: label)?.0
        }
        if let kind, kind.isMovable, kind.placement.allowsMoves, let target {
            do {
                try await activation.migrate(to: target)
                return .moved
            } catch  where error.code == .invalidArgument {
                // Not active (yet): still claiming its name, or already gone.
                return .notYet
            } catch {
                // The activation stopped here all the same; its queue went wherever the name is.
                return .stopped
            }
        }
        guard stopUnmovable else { return .notYet }
        await activation.waitUntilIdle()
        if stop(activation, since: nil) {
            await activation.finishStop()
            return .stopped
        }
        return .notYet
    }

    /// Started and not stopping (draining, or forwarding after it left, included).
    var isRunning: Bool { lifeSnapshot.isServing }
}
