import DNA
import DNATesting
import Testing

@Suite("Rebalance planner")
struct RebalancePlannerTests {
    typealias Planner = RebalancePlanner
    typealias Load = RebalancePlanner.NodeLoad

    static let unlimited = Planner.Limits(maxMoves: .max, maxFraction: 1)
    static let (a, b, c, d) = (NodeID(rawValue: "a"), NodeID(rawValue: "b"), NodeID(rawValue: "c"), NodeID(rawValue: "d"))

    /// Rounds until balanced; the loads after each.
    static func rounds(_ nodes: [Load], limits: Planner.Limits = .init()) throws -> [[Load]] {
        var loads = nodes
        var history: [[Load]] = []
        for _ in 0..<20_000 {
            let plan = try Planner.plan(nodes: loads, limits: limits)
            if plan.isBalanced { return history }
            loads = Planner.applying(plan, to: loads)
            history.append(loads)
        }
        Issue.record("no balance after 20,000 rounds")
        return history
    }

    @Test("a join: 3,000 activations on one node reach the fair share in rounds of at most the limit, spread over the new nodes")
    func joinIsBalancedInBoundedRounds() throws {
        let nodes = [Load(id: Self.a, activations: 3000), Load(id: Self.b, activations: 0), Load(id: Self.c, activations: 0)]
        let first = try Planner.plan(nodes: nodes)
        #expect(first.shares == [Self.a: 1000, Self.b: 1000, Self.c: 1000])
        #expect(
            first.moves == [
                .init(from: .node(Self.a), to: Self.b, count: 250), .init(from: .node(Self.a), to: Self.c, count: 250),
            ])
        #expect(first.remaining == 1500)
        let history = try Self.rounds(nodes)
        #expect(history.count == 4, "2,000 moves at 500 per round")
        #expect(history.last.map(Planner.maxDeviation) == 0)
    }

    @Test("the fraction limit bounds a round too, and a round moves at least one")
    func fractionLimit() throws {
        let nodes = [Load(id: Self.a, activations: 100), Load(id: Self.b, activations: 0)]
        #expect(try Planner.plan(nodes: nodes, limits: .init(maxMoves: 500, maxFraction: 0.1)).moved == 10)
        let few = [Load(id: Self.a, activations: 3), Load(id: Self.b, activations: 0)]
        #expect(try Planner.plan(nodes: few, limits: .init(maxMoves: 500, maxFraction: 0.01)).moved == 1)
    }

    @Test("within one of each other is balanced: nothing moves back and forth")
    func noChurnAtBalance() throws {
        let nodes = [Load(id: Self.a, activations: 4), Load(id: Self.b, activations: 3), Load(id: Self.c, activations: 3)]
        let plan = try Planner.plan(nodes: nodes)
        #expect(plan.isBalanced)
        #expect(plan.shares == [Self.a: 4, Self.b: 3, Self.c: 3])
    }

    @Test("the extra activations stay where they are: the fewest moves")
    func fewestMoves() throws {
        let nodes = [Load(id: Self.a, activations: 5), Load(id: Self.b, activations: 5), Load(id: Self.c, activations: 0)]
        let plan = try Planner.plan(nodes: nodes, limits: Self.unlimited)
        #expect(plan.moved == 3)
        #expect(plan.moves == [.init(from: .node(Self.a), to: Self.c, count: 1), .init(from: .node(Self.b), to: Self.c, count: 2)])
        #expect(Planner.applying(plan, to: nodes).map(\.activations) == [4, 3, 3])
    }

    @Test("a draining node gives everything away and takes nothing")
    func drainingGivesAll() throws {
        let nodes = [
            Load(id: Self.a, activations: 10, role: .draining), Load(id: Self.b, activations: 1), Load(id: Self.c, activations: 0),
        ]
        let plan = try Planner.plan(nodes: nodes, limits: Self.unlimited)
        #expect(plan.shares[Self.a] == nil)
        #expect(plan.remaining == 0)
        #expect(Planner.applying(plan, to: nodes).map(\.activations) == [0, 6, 5])
    }

    @Test("names without a live owner go first, then a draining node's, then the excess of the most loaded")
    func urgencyOrder() throws {
        let nodes = [
            Load(id: Self.a, activations: 9), Load(id: Self.b, activations: 3, role: .draining), Load(id: Self.c, activations: 0),
        ]
        let plan = try Planner.plan(nodes: nodes, orphaned: 4, limits: .init(maxMoves: 5, maxFraction: 1))
        #expect(plan.moves.map(\.from) == [.orphaned, .node(Self.b)])
        #expect(plan.moves.first?.count == 4)
        #expect(plan.moved == 5)
        #expect(plan.remaining == 2 + 1, "the rest of b's, and a's excess")
    }

    @Test("excluded nodes neither give nor take, and do not count in the shares")
    func excludedNodesAreLeftAlone() throws {
        let nodes = [
            Load(id: Self.a, activations: 100, role: .excluded), Load(id: Self.b, activations: 6), Load(id: Self.c, activations: 0),
        ]
        let plan = try Planner.plan(nodes: nodes, limits: Self.unlimited)
        #expect(plan.shares == [Self.b: 3, Self.c: 3])
        #expect(plan.moves == [.init(from: .node(Self.b), to: Self.c, count: 3)])
    }

    @Test("what must move with nowhere to go is a clear error; with nothing to move, an empty plan")
    func noEligibleNode() throws {
        let draining = [Load(id: Self.a, activations: 7, role: .draining), Load(id: Self.b, activations: 2, role: .excluded)]
        let error = #expect(throws: DNAError.self) { try Planner.plan(nodes: draining) }
        #expect(error?.code == .noEligibleNode)
        let orphans = #expect(throws: DNAError.self) { try Planner.plan(nodes: [], orphaned: 3) }
        #expect(orphans?.code == .noEligibleNode)
        #expect(try Planner.plan(nodes: []).isBalanced)
        #expect(try Planner.plan(nodes: [Load(id: Self.a, activations: 0, role: .draining)]).isBalanced)
    }

    @Test("bad input: limits that allow no move, negative counts, a node twice")
    func badInput() throws {
        let nodes = [Load(id: Self.a, activations: 1)]
        for limits in [Planner.Limits(maxMoves: 0), .init(maxFraction: 0), .init(maxFraction: 1.5), .init(maxFraction: .nan)] {
            let error = #expect(throws: DNAError.self) { try Planner.plan(nodes: nodes, limits: limits) }
            #expect(error?.code == .invalidArgument)
        }
        #expect(throws: DNAError.self) { try Planner.plan(nodes: [Load(id: Self.a, activations: -1)]) }
        #expect(throws: DNAError.self) { try Planner.plan(nodes: nodes, orphaned: -1) }
        #expect(throws: DNAError.self) { try Planner.plan(nodes: nodes + nodes) }
    }

    @Test("the plan does not depend on the order the nodes are listed in")
    func orderIndependent() throws {
        let nodes = [
            Load(id: Self.a, activations: 7), Load(id: Self.b, activations: 7), Load(id: Self.c, activations: 1),
            Load(id: Self.d, activations: 0),
        ]
        let plan = try Planner.plan(nodes: nodes)
        #expect(try Planner.plan(nodes: nodes.reversed()) == plan)
        #expect(try Planner.plan(nodes: [nodes[2], nodes[0], nodes[3], nodes[1]]) == plan)
    }

    @Test("random loads: rounds keep the total, never overshoot a share, and end within one of each other")
    func randomLoadsConverge() throws {
        var random = SimulationRandom(seed: 0xDA7A)
        for _ in 0..<300 {
            let count = Int(random.next() % 6) + 1
            var nodes: [Load] = (0..<count).map { index in
                let roles: [Planner.Role] = [.eligible, .eligible, .eligible, .draining, .excluded]
                return Load(
                    id: NodeID(rawValue: "n\(index)"), activations: Int(random.next() % 2000),
                    role: roles[Int(random.next() % UInt64(roles.count))])
            }
            if !nodes.contains(where: { $0.role == .eligible }) { nodes[0].role = .eligible }
            let limits = Planner.Limits(maxMoves: Int(random.next() % 300) + 1, maxFraction: Double(random.next() % 50 + 1) / 100)
            let total = nodes.reduce(0) { $0 + $1.activations }
            let first = try Planner.plan(nodes: nodes, limits: limits)
            let shares = first.shares
            let history = try Self.rounds(nodes, limits: limits)
            // No move beyond those planned first (nothing moves back), in full rounds.
            let planned = first.moved + first.remaining
            if first.moved > 0 { #expect(history.count == (planned + first.moved - 1) / first.moved) }
            var movedInAll = 0
            var before = nodes
            for round in history {
                movedInAll += zip(before, round).reduce(0) { $0 + max(0, $1.1.activations - $1.0.activations) }
                before = round
            }
            #expect(movedInAll == planned, "every move lands on a receiver; none beyond the first plan's")
            let final = history.last ?? nodes
            #expect(final.reduce(0) { $0 + $1.activations } == total)
            for round in history {
                for node in round where node.role == .eligible {
                    #expect(node.activations <= max(shares[node.id]!, nodes.first { $0.id == node.id }!.activations))
                }
            }
            let eligible = final.filter { $0.role == .eligible }.map(\.activations)
            #expect(eligible.max()! - eligible.min()! <= 1, "\(nodes) -> \(final)")
            #expect(final.filter { $0.role == .draining }.allSatisfy { $0.activations == 0 })
            #expect(final.filter { $0.role == .excluded } == nodes.filter { $0.role == .excluded })
        }
    }
}
