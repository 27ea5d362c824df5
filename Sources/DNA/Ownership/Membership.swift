import DNAStore
import DNATransport

/// What a node knows of its cluster's nodes, as last read from the store, and the
/// placement decisions made from it. Pure: part of ``NodeStateMachine``, read and changed
/// under the node's lock.
package struct Membership: Sendable {
    struct Member: Sendable {
        var record: NodeRecord
        var address: PeerAddress?
        var alive: Bool
        var servesNewActors: Bool { record.state == .up && alive }
    }

    private var members: [NodeID: Member] = [:]

    package init() {}

    /// Replaces the membership with the store's view; returns the nodes that died since the
    /// last view (left, or no heartbeat within the failure timeout).
    /// `each` sees every record with the one it replaces (`nil`: a node not seen before).
    package mutating func update(
        _ records: [NodeRecord], each: (_ old: NodeRecord?, _ new: NodeRecord) -> Void = { _, _ in }
    ) -> Set<NodeID> {
        var died: Set<NodeID> = []
        // Updated in place: every node reads every other's row each heartbeat, and the set
        // of nodes rarely changes.
        for record in records {
            if let index = members.index(forKey: record.id) {
                let known = members.values[index]
                each(known.record, record)
                if !record.isAlive && known.alive { died.insert(record.id) }
                // Parsed again only when it changed.
                let address = known.record.address == record.address ? known.address : try? PeerAddress(parsing: record.address)
                members.values[index] = Member(record: record, address: address, alive: record.isAlive)
            } else {
                each(nil, record)
                if !record.isAlive { died.insert(record.id) }
                members[record.id] = Member(record: record, address: try? PeerAddress(parsing: record.address), alive: record.isAlive)
            }
        }
        if members.count != records.count {
            let current = Set(records.map(\.id))
            members = members.filter { current.contains($0.key) }
        }
        return died
    }

    package func address(of node: NodeID) -> PeerAddress? { members[node]?.address }

    /// `node`'s row as last read.
    package func record(of node: NodeID) -> NodeRecord? { members[node]?.record }

    /// `node`'s address and whether the view counts it dead, in one lookup (the routing of
    /// every forwarded message asks both); `nil` for a node not in the view.
    func addressAndDeath(of node: NodeID) -> (address: PeerAddress, dead: Bool)? {
        guard let member = members[node], let address = member.address else { return nil }
        return (address, !member.alive)
    }

    /// Whether the store's last view counts `node` dead (silent past its failure timeout
    /// by the store's clock, or left); `false` for a node not in the view.
    func isDead(_ node: NodeID) -> Bool { members[node].map { !$0.alive } ?? false }

    /// Whether `node` is live, up and not draining: it may take actors.
    func servesNewActors(_ node: NodeID) -> Bool { members[node]?.servesNewActors ?? false }

    /// Why a member cannot take actors, as the membership shows it (`nil`: not a member).
    func describe(_ node: NodeID) -> String? {
        guard let member = members[node] else { return nil }
        if !member.alive {
            return
                "it is not alive (state \(member.record.state.rawValue), last heartbeat \(member.record.heartbeatAgeMilliseconds) ms ago)"
        }
        return "it is \(member.record.state.rawValue)"
    }

    /// The addresses of the live nodes other than `this` one.
    package func liveAddresses(except this: NodeID) -> [PeerAddress] {
        return members.compactMap { node, member in node != this && member.alive ? member.address : nil }
    }

    func knows(_ node: NodeID) -> Bool { members[node] != nil }

    /// Whether a live node (this one included) is at `address`.
    package func isLive(at address: PeerAddress) -> Bool {
        members.values.contains { $0.alive && $0.address == address }
    }

    /// Whether a node at `address` left on purpose within its failure timeout: after a
    /// drain it forwards for a moment, so the link to it stays until then.
    func isLeaving(at address: PeerAddress) -> Bool {
        return members.values.contains {
            $0.address == address && $0.record.state == .left
                && $0.record.heartbeatAgeMilliseconds < $0.record.failureTimeoutMilliseconds
        }
    }

    /// The nodes now serving at `address` (a node restarted on the same address is a new id).
    package func nodes(at address: PeerAddress) -> [NodeID] {
        members.compactMap { $0.value.address == address ? $0.key : nil }
    }

    /// The node that consistent-hash placement picks for `actor`, if it is not `this` one:
    /// the live node with the highest hash of (node, actor) — rendezvous hashing, so a
    /// node joining or leaving moves only the names it wins or held.
    package func placement(of actor: ActorID, this: NodeID) -> (NodeID, PeerAddress)? {
        guard let (node, address) = highestScore(for: actor, among: { node, member in member.servesNewActors || node == this }),
            node != this, let address
        else { return nil }
        return (node, address)
    }

    /// Where a draining node sends a name it does not host, and where a node without the
    /// label a kind is pinned to sends it: the live serving node other than `this` (and
    /// carrying `label`, if given) with the highest hash of (node, actor).
    package func placement(of actor: ActorID, excluding this: NodeID, label: String? = nil) -> (NodeID, PeerAddress)? {
        guard
            let (node, address) = highestScore(
                for: actor,
                among: { node, member in
                    member.servesNewActors && node != this && member.address != nil
                        && (label == nil || member.record.labels.contains(label!))
                }), let address
        else { return nil }
        return (node, address)
    }

    /// Least-loaded placement: of two nodes picked at random among the live serving ones
    /// and `this` (hosting `thisLoad`), the one with fewer activations; `nil` when that is
    /// `this` one.
    func leastLoaded(this: NodeID, thisLoad: Int) -> (NodeID, PeerAddress)? {
        var candidates: [(id: NodeID, load: Int, address: PeerAddress?)] = [(this, thisLoad, nil)]
        for (node, member) in members where node != this && member.servesNewActors && member.address != nil {
            candidates.append((node, Int(member.record.activations), member.address))
        }
        guard candidates.count > 1 else { return nil }
        let first = Int.random(in: 0..<candidates.count)
        var second = Int.random(in: 0..<(candidates.count - 1))
        if second >= first { second += 1 }
        let (a, b) = (candidates[first], candidates[second])
        let chosen = a.load != b.load ? (a.load < b.load ? a : b) : (a.id == this || b.id == this ? candidates[0] : a)
        guard chosen.id != this, let address = chosen.address else { return nil }
        return (chosen.id, address)
    }

    /// The live nodes as the rebalancing planner sees them, `this` one with its own
    /// count: draining nodes and those carrying an excluded label are left out of the
    /// round (a draining node moves its activations itself).
    package func rebalanceLoads(
        this: NodeID, thisLoad: Int, thisRole: RebalancePlanner.Role, excludedLabels: Set<String>
    )
        -> [RebalancePlanner.NodeLoad]
    {
        var loads: [RebalancePlanner.NodeLoad] = []
        for (node, member) in members where node != this && member.alive && member.address != nil {
            let role: RebalancePlanner.Role =
                member.record.state == .up && excludedLabels.isDisjoint(with: member.record.labels) ? .eligible : .excluded
            guard member.record.state == .up || member.record.state == .draining else { continue }
            loads.append(RebalancePlanner.NodeLoad(id: node, activations: Int(member.record.activations), role: role))
        }
        loads.append(RebalancePlanner.NodeLoad(id: this, activations: thisLoad, role: thisRole))
        return loads.sorted { $0.id.rawValue < $1.id.rawValue }
    }

    /// The labels `node` recorded when it joined.
    func labels(of node: NodeID) -> [String] { members[node]?.record.labels ?? [] }

    /// Rendezvous hashing: of the members `included` picks, the one with the highest
    /// score for `actor` (ties: the greater id).
    private func highestScore(
        for actor: ActorID, among included: (NodeID, Member) -> Bool
    ) -> (NodeID, PeerAddress?)? {
        var best: (score: UInt64, node: NodeID, address: PeerAddress?)?
        for (node, member) in members where included(node, member) {
            let score = Self.score(node: node, actor: actor)
            if best == nil || score > best!.score || (score == best!.score && node.rawValue > best!.node.rawValue) {
                best = (score, node, member.address)
            }
        }
        return best.map { ($0.node, $0.address) }
    }

    /// The live nodes taking actors, other than `this`, with the activations each reported.
    package func servingNodes(except this: NodeID) -> [(id: NodeID, activations: Int)] {
        return members.compactMap { node, member in
            node != this && member.servesNewActors && member.address != nil ? (node, Int(member.record.activations)) : nil
        }.sorted { $0.id.rawValue < $1.id.rawValue }
    }

    /// FNV-1a over the node id and the actor's name, then a final mix: stable across
    /// processes and versions (Swift's `Hasher` is seeded per process).
    static func score(node: NodeID, actor: ActorID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ text: String) {
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            hash ^= 0xff
            hash = hash &* 0x100_0000_01b3
        }
        mix(node.rawValue)
        mix(actor.namespace)
        mix(actor.kind)
        mix(actor.key)
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}
