import DNA
import DNAStore
import DNATransport

/// The simulation's network between nodes: one connection per sender and receiver, which
/// carries requests one way and their responses the other, in order. A connection lives
/// as long as both processes and no fault breaks it; the next send opens a new one (a new
/// attempt, as ``ClusterTransport`` numbers them).
final class SimulatedNetwork: @unchecked Sendable {
    private struct Pair: Hashable {
        var from: Int
        var to: Int
    }

    private struct Connection {
        var attempt: UInt64
        var fromIncarnation: Int
        var toIncarnation: Int
        var broken = false
        /// Its connection attempt fails: nothing sent on it arrives.
        var failing = false
        /// Closed by its sender (`disconnect`): what was written before still arrives (TCP
        /// delivers what it has before the close), nothing comes back.
        var closedBySender = false
        var lastForward: Int64 = 0
        var lastBack: Int64 = 0
        /// Casts sent and not delivered yet: lost if the connection breaks.
        var castsInFlight = 0
        /// Of them, the runtime's own (not the clients').
        var runtimeCastsInFlight = 0
    }

    unowned let simulation: RuntimeSimulation
    private var connections: [Pair: Connection] = [:]
    private var nextAttempt: UInt64 = 1
    /// Pairs of slots (lower first) that cannot reach each other until the time given.
    var partitions: [Int: [Int: Int64]] = [:]
    /// Until when messages take longer (a congested network).
    var slowUntil: Int64 = 0
    /// The runtime's own casts (wakes, alarm fires) lost with connections, and so counted as
    /// dropped by their senders.
    private(set) var runtimeCastsLost = 0

    private static func isRuntimeCast(_ request: WireRequest) -> Bool {
        !request.expectsReply && !request.requestName.hasSuffix("SimulatedRegister.Append")
    }

    init(simulation: RuntimeSimulation) { self.simulation = simulation }

    func isPartitioned(_ a: Int, _ b: Int) -> Bool {
        let (low, high) = a < b ? (a, b) : (b, a)
        guard let until = partitions[low]?[high] else { return false }
        return simulation.now < until
    }

    func partition(_ a: Int, _ b: Int, until: Int64) {
        let (low, high) = a < b ? (a, b) : (b, a)
        partitions[low, default: [:]][high] = until
        breakConnection(from: a, to: b, reason: "partitioned")
        breakConnection(from: b, to: a, reason: "partitioned")
    }

    private func latency() -> Int64 {
        let base = Int64.random(in: 100_000...1_500_000, using: &simulation.random)
        return simulation.now < slowUntil ? base + Int64.random(in: 0...80_000_000, using: &simulation.random) : base
    }

    /// Queues `request` on the connection from `from` to `to`; returns its attempt.
    func send(_ request: WireRequest, from: Int, incarnation: Int, to: Int) -> UInt64 {
        let pair = Pair(from: from, to: to)
        if connections[pair].map({ $0.broken || $0.fromIncarnation != incarnation }) ?? true {
            let target = simulation.slots[to]
            let connection = Connection(attempt: nextAttempt, fromIncarnation: incarnation, toIncarnation: target.incarnation)
            nextAttempt += 1
            connections[pair] = connection
            if target.isUp && !isPartitioned(from, to) {
                simulation.slots[from].transport?.connected(to: target.address)
            } else {
                // The connection attempt fails: what is sent on it meanwhile is lost, and the
                // sender hears so (with the casts it lost).
                connections[pair]!.failing = true
                let attempt = connection.attempt
                simulation.schedule(
                    at: simulation.now + Int64.random(in: 1_000_000...20_000_000, using: &simulation.random), on: from,
                    incarnation: incarnation, "connect fails"
                ) { [self] in
                    guard let current = connections[pair], current.attempt == attempt, !current.broken else { return }
                    breakConnection(from: from, to: to, reason: "refused")
                }
            }
        }
        var connection = connections[pair]!
        simulation.trace(
            "net n\(from)→n\(to) \(request.key) \(request.requestName) \(request.expectsReply ? "call \(request.id)" : "cast") seq \(request.sequence) hops \(request.hops) attempt \(connection.attempt)\(connection.failing ? " (failing)" : "")"
        )
        if connection.failing {
            if !request.expectsReply { connections[pair]!.castsInFlight += 1 }
            if Self.isRuntimeCast(request) { connections[pair]!.runtimeCastsInFlight += 1 }
            return connection.attempt
        }
        let at = max(simulation.now + latency(), connection.lastForward)
        connection.lastForward = at
        if !request.expectsReply { connection.castsInFlight += 1 }
        if Self.isRuntimeCast(request) { connection.runtimeCastsInFlight += 1 }
        connections[pair] = connection
        let attempt = connection.attempt
        let sender = NodeID(rawValue: simulation.slots[from].nodeID.rawValue)
        simulation.schedule(at: at, on: to, incarnation: connection.toIncarnation, "deliver request") { [self] in
            guard var current = connections[pair], current.attempt == attempt, !current.broken || current.closedBySender else { return }
            if !request.expectsReply {
                current.castsInFlight -= 1
                if Self.isRuntimeCast(request) { current.runtimeCastsInFlight -= 1 }
                connections[pair] = current
            }
            guard let receiver = simulation.slots[to].transport else { return }
            let sink = ResponseSink(peerNodeID: sender.rawValue) { [self] response in
                respond(response, on: pair, attempt: attempt)
            }
            receiver.delegate.transport(didReceive: request, sink: sink)
        }
        return attempt
    }

    private func respond(_ response: WireResponse, on pair: Pair, attempt: UInt64) {
        guard var connection = connections[pair], connection.attempt == attempt, !connection.broken else { return }
        let at = max(simulation.now + latency(), connection.lastBack)
        connection.lastBack = at
        connections[pair] = connection
        let peer = simulation.slots[pair.to].address
        simulation.schedule(at: at, on: pair.from, incarnation: connection.fromIncarnation, "deliver response") { [self] in
            guard let current = connections[pair], current.attempt == attempt, !current.broken else { return }
            simulation.slots[pair.from].transport?.delegate.transport(didReceive: response, from: peer)
        }
    }

    /// Breaks the connection from `from` to `to`: what is on it is lost; the sender hears
    /// `linkFailed` for its attempt (if it is still alive). Unless the sender closed the link
    /// itself (`report` false, as ``ClusterTransport/disconnect(from:)`` reports nothing):
    /// then the requests already written still arrive, and no response comes back.
    func breakConnection(from: Int, to: Int, reason: String, report: Bool = true) {
        let pair = Pair(from: from, to: to)
        guard var connection = connections[pair], !connection.broken else { return }
        connection.broken = true
        connection.closedBySender = !report && !connection.failing
        connections[pair] = connection
        let peer = simulation.slots[to].address
        let attempt = connection.attempt
        let dropped = connection.castsInFlight
        guard report else { return }
        if simulation.slots[from].isUp && simulation.slots[from].incarnation == connection.fromIncarnation {
            runtimeCastsLost += connection.runtimeCastsInFlight
        }
        simulation.schedule(
            at: simulation.now + (connection.failing ? 0 : Int64.random(in: 100_000...5_000_000, using: &simulation.random)), on: from,
            incarnation: connection.fromIncarnation, "link fails"
        ) { [self, simulation] in
            simulation.trace("net n\(from)→n\(to) attempt \(attempt) failed (\(reason)), \(dropped) casts lost")
            // As `LinkStateMachine.failed`: a stale attempt's failure starts no back-off.
            if connections[pair]?.attempt == attempt { simulation.slots[from].transport?.attemptFailed(to: peer) }
            simulation.slots[from].transport?.delegate.transport(
                linkFailed: LinkFailure(
                    peer: peer, attempt: attempt, error: TransportError(.unreachable, "simulated: connection \(reason)"),
                    droppedCasts: dropped))
        }
    }

    /// Breaks every connection from or to `slot` (its process died or shut its transport).
    func breakConnections(of slot: Int, reason: String) {
        let pairs = connections.keys.filter { $0.from == slot || $0.to == slot }.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
        for pair in pairs { breakConnection(from: pair.from, to: pair.to, reason: reason) }
    }

    /// A random live connection, to break.
    func randomConnection() -> (from: Int, to: Int)? {
        let live = connections.filter { !$0.value.broken }.keys.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
        return simulation.random.pick(live).map { ($0.from, $0.to) }
    }
}
