import DNAStore
import Synchronization
import Logging
import CoreMetrics

/// What this node did in one rebalancing round.
public struct RebalanceReport: Sendable, Equatable {
    /// The node's round number (1, 2, …).
    public var round: Int
    /// Activations the plan takes from this node in this round.
    public var planned: Int
    /// Activations moved to other nodes.
    public var moved: Int
    /// Planned moves that did not happen (not movable after all, still activating, or
    /// refused): they wait for a later round.
    public var failed: Int
    /// The loads the round planned from (this node's own count is current, the others'
    /// come from their last heartbeats).
    public var loads: [RebalancePlanner.NodeLoad]
    /// How long the round took, by the node's clock.
    public var duration: Duration
}

extension Node {
    /// Makes one rebalancing round now, whatever ``Node/Rebalancing/enabled`` and
    /// ``Node/Rebalancing/tolerance`` say: plans it from the live nodes' loads (the
    /// plan is the same on every node) and moves away the activations it takes from this
    /// node. Other nodes give theirs in their own rounds (`dna rebalance` asks them all).
    ///
    /// - Throws: ``DNAError/Code/nodeStopped`` if the node is not running or is draining;
    ///   ``DNAError/Code/invalidArgument`` for a node without a cluster transport.
    @discardableResult
    public func rebalance() async throws(DNAError) -> RebalanceReport {
        guard isRunning, !lifeSnapshot.drained else {
            throw DNAError(.nodeStopped, "node \(id) is not running, or is draining: it makes no rebalancing round")
        }
        guard transport != nil else { throw DNAError(.invalidArgument, "a node without a cluster transport has nowhere to move actors") }
        return await rebalanceRound(forced: true)!
    }

    /// Every tick (a heartbeat interval, at most the rebalancing interval), does what
    /// ``RebalanceTiming`` decides.
    func rebalanceLoop() async {
        let tick = min(configuration.heartbeatInterval, configuration.rebalancing.interval)
        while !Task.isCancelled {
            do { try await clock.sleep(for: tick) } catch { return }
            if lifeSnapshot.drained { return }
            switch update({ $0.rebalanceTick(tick) }) {
            case .wait:
                continue
            case .askedRound:
                _ = await rebalanceRound(forced: true)
                do { try await store.rebalanceDone(node: id) } catch {
                    logger.warning("could not record the rebalancing round asked for", metadata: ["error": "\(error)"])
                }
                update { $0.rebalanceRoundMade(moved: nil) }
            case .round:
                let report = await rebalanceRound(forced: false)
                update { $0.rebalanceRoundMade(moved: report?.moved ?? 0) }
            }
        }
    }

    /// Plans a round and carries out this node's part; `nil` when the loads are within
    /// the tolerance (unless `forced`) or the node cannot plan now.
    func rebalanceRound(forced: Bool) async -> RebalanceReport? {
        let start = clock.now
        do { try await refreshMembers() } catch {
            logger.debug("rebalancing: could not read the membership", metadata: ["error": "\(error)"])
            return nil
        }
        let settings = configuration.rebalancing
        let excludedHere = !settings.excludedLabels.isDisjoint(with: configuration.labels)
        let loads = membership.rebalanceLoads(
            this: id, thisLoad: activationCount, thisRole: excludedHere ? .excluded : .eligible,
            excludedLabels: settings.excludedLabels)
        if !forced && RebalancePlanner.maxDeviation(loads) <= settings.tolerance { return nil }
        let plan: RebalancePlanner.Plan
        do { plan = try RebalancePlanner.plan(nodes: loads, limits: settings.limits) } catch {
            logger.debug("rebalancing: no plan", metadata: ["error": "\(error)"])
            return nil
        }
        let round = update { $0.rebalanceRoundBegins(at: start) }
        let mine = plan.moves.filter { $0.from == .node(id) }
        let planned = mine.reduce(0) { $0 + $1.count }
        eventHub.emit(.rebalanceStarted(round: round, planned: planned))
        var report = RebalanceReport(round: round, planned: planned, moved: 0, failed: 0, loads: loads, duration: .zero)
        if planned > 0 {
            let candidates = directory.withLock { directory in
                directory.activations.values.filter { activation in
                    guard let kind = kinds[activation.id.kind] else { return false }
                    return kind.isMovable && kind.placement.isRebalanced
                }
            }
            var moves: [(any AnyActivation, NodeID)] = []
            var next = candidates.startIndex
            for move in mine {
                for _ in 0..<move.count where next < candidates.endIndex {
                    moves.append((candidates[next], move.to))
                    next += 1
                }
            }
            let outcomes = await moveConcurrently(moves, stopUnmovable: false)
            report.moved = outcomes.filter { $0 == .moved }.count
            report.failed = planned - report.moved
            metrics.rebalanceMoves.increment(by: report.moved)
            // The others see the new count now, not at the next heartbeat.
            try? await renewLease(state: servingState)
            logger.info(
                "rebalancing round", metadata: ["round": "\(round)", "planned": "\(planned)", "moved": "\(report.moved)"])
        }
        report.duration = clock.now - start
        eventHub.emit(.rebalanceFinished(round: round, moved: report.moved, failed: report.failed))
        return report
    }
}
