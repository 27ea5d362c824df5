import DNATransport
import Synchronization

/// Where actors active on other nodes were last found.
///
/// Every change that can make a remembered location wrong (forgetting one, a node's
/// locations dropped, the cache cleared) bumps a generation; an ``ActorRef`` keeps the
/// route it last used with the generation it saw, and sends straight to the owner while
/// the generation is unchanged, skipping the node's directory and this lock.
///
/// Bounded: past ``capacity`` names the cache starts afresh (they are looked up again on
/// their next message).
package final class LocationCache: Sendable {
    private struct State {
        var owners: [ActorID: NodeID] = [:]
    }

    private let state = Mutex(State())
    private let currentGeneration = Atomic<UInt64>(0)
    let capacity: Int

    package init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// Changes whenever a remembered location may have become wrong.
    package var generation: UInt64 { currentGeneration.load(ordering: .acquiring) }

    package func owner(of actor: ActorID) -> NodeID? {
        state.withLock { $0.owners[actor] }
    }

    package func record(_ owner: NodeID, for actor: ActorID) {
        state.withLock { state in
            if state.owners.count >= capacity && state.owners[actor] == nil {
                state.owners.removeAll(keepingCapacity: true)
                invalidate()
            }
            if let previous = state.owners.updateValue(owner, forKey: actor), previous != owner { invalidate() }
        }
    }

    /// Forgets `actor`'s location if it is still `owner`.
    package func forget(_ actor: ActorID, ifAt owner: NodeID) {
        state.withLock { state in
            guard state.owners[actor] == owner else { return }
            state.owners[actor] = nil
            invalidate()
        }
    }

    /// Forgets every actor believed to be on one of `owners`.
    package func forget(owners: Set<NodeID>) {
        guard !owners.isEmpty else { return }
        state.withLock { state in
            guard state.owners.values.contains(where: owners.contains) else { return }
            state.owners = state.owners.filter { !owners.contains($0.value) }
            invalidate()
        }
    }

    var count: Int { state.withLock { $0.owners.count } }

    /// Called with the lock held, so a reader that saw the old generation and then reads
    /// the map under the lock sees the change.
    private func invalidate() {
        currentGeneration.add(1, ordering: .releasing)
    }
}

/// The route a message took: to the local activation, or to the owner elsewhere as of a
/// ``LocationCache`` generation (`nil`: a placement, not to be remembered).
enum CachedRoute: Sendable {
    case local(any AnyActivation)
    case remote(owner: NodeID, address: PeerAddress, generation: UInt64?)
}
