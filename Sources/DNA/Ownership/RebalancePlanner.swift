import DNAStore

/// One round of rebalancing, decided from the nodes' loads: how many activations each node
/// gives to which. Pure: the same loads and limits always give the same plan.
///
/// The goal is the Kinesis Client Library's: every eligible node ends with its fair share.
/// With `total` activations over `n` eligible nodes, `total mod n` of them keep
/// `ceil(total / n)` and the others `floor(total / n)` (KCL's target is the ceiling for
/// all; handing the extra ones to nodes that already hold them saves moves, and leaves no
/// node more than one from any other, so nothing moves back and forth; which nodes get
/// them stays the same from round to round). What must move goes first: names
/// without a live owner that must run (KCL's expired leases), then every activation of a
/// draining node; then the excess of the most loaded. Akka's per-round limits bound a
/// round: at most ``Limits/maxMoves`` moves and ``Limits/maxFraction`` of all
/// activations, so a join does not move everything at once; what is held back is
/// ``Plan/remaining`` and goes in later rounds.
///
/// Receivers are filled least loaded first; ties are broken by node id, so that a plan
/// replays exactly in the simulation.
public enum RebalancePlanner {
    /// How much one round may move.
    public struct Limits: Sendable, Equatable {
        /// At most this many activations move in one round.
        public var maxMoves: Int
        /// At most this fraction of all activations move in one round (at least one).
        public var maxFraction: Double

        /// At most `maxMoves` moves and `maxFraction` of all activations per round.
        public init(maxMoves: Int = 500, maxFraction: Double = 0.25) {
            self.maxMoves = maxMoves
            self.maxFraction = maxFraction
        }
    }

    /// What a node may do in rebalancing.
    public enum Role: Sendable, Equatable {
        /// Live, and takes its fair share.
        case eligible
        /// Live, and gives all it hosts away, taking nothing.
        case draining
        /// Live, but left alone: it neither gives nor takes (for example a node without
        /// the label a kind is pinned to), and its activations are not counted.
        case excluded
    }

    /// A live node and the activations it hosts.
    public struct NodeLoad: Sendable, Equatable {
        /// The node.
        public var id: NodeID
        /// How many activations it hosts.
        public var activations: Int
        /// What it may do in this round.
        public var role: Role

        /// The node `id`, hosting `activations` activations; eligible unless `role` says.
        public init(id: NodeID, activations: Int, role: Role = .eligible) {
            self.id = id
            self.activations = activations
            self.role = role
        }
    }

    /// Where a move takes activations from.
    public enum Source: Sendable, Hashable, CustomStringConvertible {
        /// Names whose owner is gone and that must run (a pipeline stage's partitions).
        case orphaned
        /// The activations of this node.
        case node(NodeID)

        /// `(no live owner)`, or the node's id.
        public var description: String {
            switch self {
            case .orphaned: "(no live owner)"
            case .node(let id): id.rawValue
            }
        }
    }

    /// `count` activations go from `from` to `to`.
    public struct Move: Sendable, Equatable {
        /// Where the activations come from.
        public var from: Source
        /// The node that takes them.
        public var to: NodeID
        /// How many activations move.
        public var count: Int

        /// A move of `count` activations from `from` to `to`.
        public init(from: Source, to: NodeID, count: Int) {
            self.from = from
            self.to = to
            self.count = count
        }
    }

    /// A round's decision.
    public struct Plan: Sendable, Equatable {
        /// The moves of this round, the most urgent first.
        public var moves: [Move]
        /// What each eligible node hosts once balanced.
        public var shares: [NodeID: Int]
        /// Activations that still have to move after this round (held back by the limits).
        public var remaining: Int

        /// Activations moved in this round.
        public var moved: Int { moves.reduce(0) { $0 + $1.count } }
        /// Nothing to move now or later.
        public var isBalanced: Bool { moves.isEmpty && remaining == 0 }
    }

    /// Plans one round.
    ///
    /// - Parameters:
    ///   - nodes: the live nodes (dead ones host nothing: their names are `orphaned`, or
    ///     wait for their next message).
    ///   - orphaned: names without a live owner that must be running.
    ///   - limits: the most a round may move (``Limits``).
    /// - Throws: ``DNAError/Code/noEligibleNode`` when something must move (orphaned names,
    ///   a draining node's activations) and no node can take it;
    ///   ``DNAError/Code/invalidArgument`` for negative counts, a node listed twice or
    ///   limits that allow no move.
    public static func plan(nodes: [NodeLoad], orphaned: Int = 0, limits: Limits = Limits()) throws(DNAError) -> Plan {
        guard limits.maxMoves >= 1, limits.maxFraction > 0, limits.maxFraction <= 1 else {
            throw DNAError(
                .invalidArgument,
                "rebalancing limits must allow a move: maxMoves \(limits.maxMoves) (≥ 1), maxFraction \(limits.maxFraction) (in (0, 1])")
        }
        guard orphaned >= 0, !nodes.contains(where: { $0.activations < 0 }) else {
            throw DNAError(.invalidArgument, "activation counts cannot be negative")
        }
        guard Set(nodes.map(\.id)).count == nodes.count else {
            throw DNAError(.invalidArgument, "a node is listed twice")
        }
        let eligible = nodes.filter { $0.role == .eligible }.sorted(by: byID)
        let draining = nodes.filter { $0.role == .draining && $0.activations > 0 }.sorted(by: byID)
        let mustMove = orphaned + draining.reduce(0) { $0 + $1.activations }
        guard !eligible.isEmpty else {
            if mustMove > 0 {
                throw DNAError(
                    .noEligibleNode,
                    "\(mustMove) activation(s) must move (\(orphaned) without a live owner, the rest on draining nodes) and no live node takes actors"
                )
            }
            return Plan(moves: [], shares: [:], remaining: 0)
        }

        // Shares: the floor for all, one more for `extra` nodes: those holding at least that
        // many already (by id), then the others (by id). Givers never go below their share
        // nor receivers above theirs, so the next round picks the same nodes: a balance
        // reached in several rounds is the one planned in the first, and nothing moves back.
        let total = eligible.reduce(0) { $0 + $1.activations } + mustMove
        let floor = total / eligible.count
        let extra = total % eligible.count
        var shares: [NodeID: Int] = [:]
        let ranked = eligible.filter { $0.activations > floor } + eligible.filter { $0.activations <= floor }
        for (rank, node) in ranked.enumerated() { shares[node.id] = floor + (rank < extra ? 1 : 0) }
        let byLoad = eligible.sorted {
            $0.activations != $1.activations ? $0.activations > $1.activations : $0.id.rawValue < $1.id.rawValue
        }

        // What must leave goes first: names without a live owner, then draining nodes'.
        var sources: [(Source, Int)] = []
        if orphaned > 0 { sources.append((.orphaned, orphaned)) }
        for node in draining { sources.append((.node(node.id), node.activations)) }
        let givers = byLoad.filter { $0.activations > shares[$0.id]! }
        let excess = givers.reduce(0) { $0 + $1.activations - shares[$1.id]! }
        let needed = mustMove + excess
        let budget = min(limits.maxMoves, max(1, Int(limits.maxFraction * Double(total))))
        let allowed = min(needed, budget)

        // Then the excess of the most loaded, lowering the highest first, together.
        let fromGivers = allowed - min(allowed, mustMove)
        let giverOrder = givers.sorted {
            $0.activations != $1.activations ? $0.activations > $1.activations : $0.id.rawValue > $1.id.rawValue
        }
        let outtake = spread(
            fromGivers, levels: giverOrder.map { -$0.activations }, rooms: giverOrder.map { $0.activations - shares[$0.id]! })
        let outtakes = Dictionary(uniqueKeysWithValues: zip(giverOrder.map(\.id), outtake))
        for node in givers where outtakes[node.id]! > 0 { sources.append((.node(node.id), outtakes[node.id]!)) }

        // Receivers: below their share, the least loaded raised first, together, so a
        // limited round spreads over all of them.
        let receivers = eligible.filter { $0.activations < shares[$0.id]! }
            .sorted { $0.activations != $1.activations ? $0.activations < $1.activations : $0.id.rawValue < $1.id.rawValue }
        let intake = spread(allowed, levels: receivers.map(\.activations), rooms: receivers.map { shares[$0.id]! - $0.activations })

        // The most urgent sources fill the receivers, in the receivers' order.
        var moves: [Move] = []
        var sourceIndex = 0
        for (receiver, wants) in zip(receivers, intake) {
            var wanted = wants
            while wanted > 0, sourceIndex < sources.count {
                let step = min(wanted, sources[sourceIndex].1)
                moves.append(Move(from: sources[sourceIndex].0, to: receiver.id, count: step))
                wanted -= step
                sources[sourceIndex].1 -= step
                if sources[sourceIndex].1 == 0 { sourceIndex += 1 }
            }
        }
        let moved = moves.reduce(0) { $0 + $1.count }
        // Sources were taken in order of urgency, so the moves are in that order too.
        return Plan(moves: moves, shares: shares, remaining: needed - moved)
    }

    /// The largest distance of an eligible node's load from the fair share
    /// (`total / nodes`), as a fraction of that share; 0 when balanced exactly, and 0 when
    /// nothing is hosted.
    public static func maxDeviation(_ nodes: [NodeLoad]) -> Double {
        let eligible = nodes.filter { $0.role == .eligible }
        let total = eligible.reduce(0) { $0 + $1.activations }
        guard !eligible.isEmpty, total > 0 else { return 0 }
        let fair = Double(total) / Double(eligible.count)
        return eligible.map { abs(Double($0.activations) - fair) / fair }.max() ?? 0
    }

    /// The loads once `plan` is carried out.
    public static func applying(_ plan: Plan, to nodes: [NodeLoad]) -> [NodeLoad] {
        var loads = nodes
        for move in plan.moves {
            if case .node(let id) = move.from, let index = loads.firstIndex(where: { $0.id == id }) {
                loads[index].activations -= move.count
            }
            if let index = loads.firstIndex(where: { $0.id == move.to }) { loads[index].activations += move.count }
        }
        return loads
    }

    private static func byID(_ a: NodeLoad, _ b: NodeLoad) -> Bool { a.id.rawValue < b.id.rawValue }

    /// Spreads `amount` over items at `levels`, each taking at most its room: the lowest
    /// are raised first, together, until they meet the next or are full. At equal levels,
    /// the earlier items take the odd ones. Returns what each takes.
    static func spread(_ amount: Int, levels: [Int], rooms: [Int]) -> [Int] {
        var taken = [Int](repeating: 0, count: levels.count)
        var left = amount
        while left > 0 {
            let open = levels.indices.filter { taken[$0] < rooms[$0] }
            guard let level = open.map({ levels[$0] + taken[$0] }).min() else { break }
            let lowest = open.filter { levels[$0] + taken[$0] == level }
            let room = lowest.map { rooms[$0] - taken[$0] }.min()!
            let nextLevel = open.map { levels[$0] + taken[$0] }.filter { $0 > level }.min()
            let raise = nextLevel.map { min($0 - level, room) } ?? room
            if raise <= left / lowest.count {
                for index in lowest { taken[index] += raise }
                left -= raise * lowest.count
            } else {
                let each = left / lowest.count
                let odd = left % lowest.count
                for (rank, index) in lowest.enumerated() { taken[index] += each + (rank < odd ? 1 : 0) }
                left = 0
            }
        }
        return taken
    }
}
