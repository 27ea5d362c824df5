import Synchronization

/// Something that happened in the cluster, as one node saw it: membership changes read
/// from the store, its own activations' lives, and its rebalancing rounds. Read them from
/// ``Node/events(bufferingNewest:)``.
public enum NodeEvent: Sendable, Equatable {
    /// A node was seen serving (`up`) for the first time.
    case nodeJoined(NodeID, address: String)
    /// A node began draining: it takes no new actors and moves its own away.
    case nodeDraining(NodeID)
    /// A node left on purpose (shutdown or drain).
    case nodeLeft(NodeID)
    /// A node stopped writing heartbeats for longer than its failure timeout: its names
    /// may be taken over.
    case nodeDeclaredDead(NodeID)
    /// An actor was activated on this node with its name at `epoch`.
    case actorActivated(ActorID, epoch: Int64)
    /// An activation on this node ended.
    case actorDeactivated(ActorID, reason: DeactivationReason)
    /// An actor moved from this node to another; its name went from `fromEpoch` to `toEpoch`.
    case actorMigrated(ActorID, from: NodeID, to: NodeID, fromEpoch: Int64, toEpoch: Int64)
    /// An activation on this node found its name taken at a later epoch (it stopped).
    case actorFenced(ActorID)
    /// This node began a rebalancing round in which it gives `planned` activations away.
    case rebalanceStarted(round: Int, planned: Int)
    /// The round ended: `moved` activations moved, `failed` could not (they stay, or went
    /// back to the store to activate on their next message).
    case rebalanceFinished(round: Int, moved: Int, failed: Int)
}

/// The node's subscribers to ``NodeEvent``s. Emitting costs one atomic load while nobody
/// listens.
final class NodeEventHub: Sendable {
    private struct State {
        var next = 0
        var subscribers: [Int: AsyncStream<NodeEvent>.Continuation] = [:]
        var finished = false
    }

    private let state = Mutex(State())
    private let listened = Atomic<Bool>(false)

    func emit(_ event: @autoclosure () -> NodeEvent) {
        guard listened.load(ordering: .relaxed) else { return }
        let event = event()
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    func subscribe(bufferingNewest limit: Int) -> AsyncStream<NodeEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: NodeEvent.self, bufferingPolicy: .bufferingNewest(limit))
        let added = state.withLock { state -> Int? in
            guard !state.finished else { return nil }
            let id = state.next
            state.next += 1
            state.subscribers[id] = continuation
            return id
        }
        guard let added else {
            continuation.finish()
            return stream
        }
        listened.store(true, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            let empty = self.state.withLock { state in
                state.subscribers[added] = nil
                return state.subscribers.isEmpty
            }
            if empty { self.listened.store(false, ordering: .relaxed) }
        }
        return stream
    }

    /// The node stopped: every sequence ends.
    func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        listened.store(false, ordering: .relaxed)
        for subscriber in subscribers { subscriber.finish() }
    }
}

/// How a node last saw a member.
package enum MemberView: Equatable, Sendable {
    case joining, up, draining, left, dead

    init(_ record: NodeRecord) {
        if !record.isAlive {
            self = record.state == .left ? .left : .dead
        } else {
            switch record.state {
            case .joining: self = .joining
            case .up: self = .up
            case .draining: self = .draining
            case .left: self = .left
            }
        }
    }

    /// The event of a change from `old` (`nil`: not seen before) to this.
    func event(from old: MemberView?, _ record: NodeRecord) -> NodeEvent? {
        guard old != self else { return nil }
        switch self {
        case .joining: return nil
        case .up: return old == nil || old == .joining ? .nodeJoined(record.id, address: record.address) : nil
        case .draining: return .nodeDraining(record.id)
        case .left: return old == nil ? nil : .nodeLeft(record.id)
        case .dead: return old == nil ? nil : .nodeDeclaredDead(record.id)
        }
    }
}

extension Node {
    /// This node's own change, seen before the store shows it to anyone.
    func noteSelf(_ view: MemberView, _ event: NodeEvent) {
        if let event = update({ $0.selfChanged(to: view, event) }) { eventHub.emit(event) }
    }

    /// The events this node sees from now on, in the order it sees them, until it stops
    /// (then the sequence ends). Each call makes an independent sequence; a reader that
    /// falls behind loses the oldest events beyond `limit`.
    ///
    /// ```swift
    /// for await event in node.events() {
    ///     if case .actorMigrated(let actor, _, let to, _, _) = event { print("\(actor) moved to \(to)") }
    /// }
    /// ```
    public func events(bufferingNewest limit: Int = 10_000) -> AsyncStream<NodeEvent> {
        eventHub.subscribe(bufferingNewest: max(1, limit))
    }
}
