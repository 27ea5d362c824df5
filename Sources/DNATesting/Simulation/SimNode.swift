import DNA
import DNAStore
import DNATransport
import NIOCore

/// One node of the simulation, doing what `Node` does, with the same decision machines:
/// the lease, activations, links, the location cache and the membership view.
final class SimNode {
    typealias Machine = ActivationStateMachine<SimEnvelope, SimHeld, Int>

    unowned let simulation: ClusterSimulation
    let slot: Int
    private(set) var incarnation = 0
    private(set) var isUp = false
    var paused = false
    var deferred: [ClusterSimulation.Event] = []
    var heartbeatsFailUntil: Int64 = 0
    /// Armed by the simulation: the node pauses this long while handling its next batch.
    var pauseInNextBatch: Duration?
    var storeDelayUntil: Int64 = 0
    var storeCallsFailUntil: Int64 = 0
    var storeDelay = Duration.zero
    private(set) var id = NodeID(rawValue: "")
    /// Global time of this incarnation's start; its clock counts from there at `rate`.
    private var bootTime: Int64 = 0
    private var rate = 1.0

    /// `Node`'s own state machine: the lease, the membership view and the silence watch.
    private var machine: NodeStateMachine<Never, Never>
    private var activations: [ActorID: SimActivation] = [:]
    private var links: [PeerAddress: SimLink] = [:]
    private var locations = LocationCache()
    private var pending: [UInt64: PendingSimCall] = [:]
    private var nextRequestID: UInt64 = 1
    /// `Node.sequencer`: numbers what this node sends, local or remote.
    private var lastSequence: UInt64 = 0
    private var origins = OriginTable(this: "")
    private var nextWaiter = 1
    private var clients: [SimClient] = []
    /// `Node.draining`: takes no new names, moves its activations away, then leaves.
    private(set) var draining = false
    private var leaving = false

    var address: PeerAddress { PeerAddress(host: "node\(slot)", port: 7400) }
    var target: ClusterSimulation.Target { ClusterSimulation.Target(slot: slot, incarnation: incarnation) }
    private var configuration: SimulationConfiguration { simulation.configuration }

    init(simulation: ClusterSimulation, slot: Int) {
        self.simulation = simulation
        self.slot = slot
        machine = Self.machine(NodeID(rawValue: "n\(slot)"), simulation.configuration)
    }

    private static func machine(_ id: NodeID, _ configuration: SimulationConfiguration) -> NodeStateMachine<Never, Never> {
        // Rounds are the simulation's own events here (``rebalanceRound()``), not ticks.
        NodeStateMachine(
            this: id, failureTimeout: configuration.failureTimeout,
            rebalance: RebalanceTiming(enabled: false, interval: .seconds(60), heartbeatInterval: .seconds(1)))
    }

    /// This node's clock: monotonic, drifting from the store's by its rate.
    var localNow: DNAInstant {
        DNAInstant(nanoseconds: Int64(Double(simulation.now - bootTime) * rate))
    }

    /// The global time at which this node's clock reads `local`.
    private func globalTime(_ local: DNAInstant) -> Int64 {
        bootTime + Int64(Double(local.nanoseconds) / rate)
    }

    private func after(_ delay: Duration, _ label: @autoclosure () -> String, _ action: @escaping () -> Void) {
        simulation.schedule(at: globalTime(localNow + delay), node: target, label(), action)
    }

    private func soon(_ label: @autoclosure () -> String, _ action: @escaping () -> Void) {
        simulation.schedule(at: simulation.now + 1_000, node: target, label(), action)
    }

    // MARK: Life

    func boot() {
        incarnation += 1
        isUp = true
        paused = false
        deferred = []
        id = NodeID(rawValue: "n\(slot).\(incarnation)")
        bootTime = simulation.now
        let drift = configuration.maxClockDrift
        rate = 1 + Double.random(in: -drift...drift, using: &simulation.random)
        machine = Self.machine(id, configuration)
        activations = [:]
        links = [:]
        locations = LocationCache()
        origins = OriginTable(this: id.rawValue)
        lastSequence = 0
        pending = [:]
        clients = []
        draining = false
        leaving = false
        simulation.trace("n\(slot) boots as \(id) (clock rate \(rate))")
        let id = self.id
        let address = self.address.description
        let cluster = simulation.cluster
        let failureTimeout = configuration.failureTimeout
        simulation.storeCall(from: self, "join") { state, now in
            state.join(node: id, cluster: cluster, address: address, failureTimeout: failureTimeout, now: now)
        } completion: {
            [self] result in
            guard case .success = result else {
                after(.milliseconds(100), "retry start") { [self] in restartAfterFailedStart() }
                return
            }
            renewLease { [self] renewed in
                guard renewed else {
                    after(.milliseconds(100), "retry start") { [self] in restartAfterFailedStart() }
                    return
                }
                refreshMembers()
                after(configuration.heartbeatInterval, "heartbeat") { [self] in heartbeat() }
                for index in 0..<configuration.clientsPerNode {
                    let client = SimClient(node: self, name: "c\(slot).\(incarnation).\(index)")
                    clients.append(client)
                    client.start()
                }
            }
        }
    }

    private func restartAfterFailedStart() {
        crash()
        boot()
    }

    /// The process dies: everything in memory is gone, its connections break.
    func crash() {
        isUp = false
        paused = false
        deferred = []
        simulation.cutConnections(of: target)
        for (_, call) in pending { if case .client(let id) = call.reply { simulation.calls[id]?.abandoned = true } }
        for client in clients {
            if let call = client.waitingFor { simulation.calls[call]?.abandoned = true }
        }
        for id in simulation.calls.keys where simulation.calls[id]!.slot == slot {
            simulation.calls[id]!.abandoned = true
        }
        activations = [:]
        pending = [:]
        clients = []
    }

    // MARK: Lease and membership

    private func renewLease(_ completion: @escaping (Bool) -> Void) {
        let heartbeat = machine.heartbeatSent(at: localNow)
        let id = self.id
        let count = Int64(activations.count)
        let fails = simulation.now < heartbeatsFailUntil
        let nodeState: NodeState = draining ? .draining : .up
        simulation.storeCall(from: self, "heartbeat", failsHeartbeat: fails) { state, now throws(StoreError) in
            try state.heartbeat(node: id, state: nodeState, activations: count, now: now)
        } completion: { [self] result in
            if case .success = result {
                machine.heartbeatSucceeded(heartbeat, at: localNow)
                completion(true)
            } else {
                completion(false)
            }
        }
    }

    private func heartbeat() {
        guard !leaving else { return }
        renewLease { [self] renewed in
            if renewed { refreshMembers() }
            after(configuration.heartbeatInterval, "heartbeat") { [self] in heartbeat() }
        }
    }

    private func refreshMembers() {
        let cluster = simulation.cluster
        simulation.storeCall(from: self, "nodes") { state, now in
            state.nodes(cluster: cluster, now: now)
        } completion: {
            [self] result in
            guard case .success(let records) = result else { return }
            let dead = machine.membersRead(records, at: localNow).died
            for address in machine.members.liveAddresses(except: id).sorted(by: { $0.description < $1.description }) {
                link(to: address).connectIfDisconnected()
            }
            guard !dead.isEmpty else { return }
            let silent = dead.filter { node in records.first { $0.id == node }?.state != .left }
            let failed = pending.keys.sorted().filter { silent.contains(pending[$0]!.owner) }
            locations.forget(owners: dead)
            for requestID in failed {
                let call = pending.removeValue(forKey: requestID)!
                answer(
                    call.reply,
                    .failure(code: DNAError.Code.nodeUnreachable.name, message: "node \(call.owner) stopped heartbeating"))
            }
        }
    }

    var leaseSnapshot: NodeLease.Snapshot { machine.lease.snapshot }

    // MARK: Delivery

    /// `Node.deliver`: the local activation, a remembered owner, or a new activation here.
    func deliver(_ envelope: SimEnvelope, to actor: ActorID, claimHere: Bool = false) throws(DNAError) {
        let claimHere = claimHere && !leaving
        if let activation = activations[actor] {
            var envelope = envelope
            if envelope.sequence == 0 { envelope.sequence = nextSequence() }
            switch activation.machine.enqueue(envelope) {
            case .accepted(let waiter):
                if let waiter { resume(activation, waiter) }
                return
            case .acceptedStartTask:
                soon("start task of \(actor)") { [self] in drive(activation) }
                return
            case .full:
                throw DNAError(.mailboxFull, "\(actor) is full")
            case .stopped:
                activations[actor] = nil
            }
        }
        if !claimHere, let owner = locations.owner(of: actor), let address = machine.members.address(of: owner) {
            try sendRemote(envelope, to: actor, owner: owner, address: address)
            return
        }
        if draining, !claimHere, let (owner, address) = machine.members.placement(of: actor, excluding: id) {
            try sendRemote(envelope, to: actor, owner: owner, address: address)
            return
        }
        if leaving { throw DNAError(.routingFailed, "\(id) left the cluster") }
        let activation = SimActivation(
            actor: actor,
            machine: Machine(
                id: actor,
                limits: .init(
                    mailboxCapacity: 10_000, maxBatch: configuration.maxBatch, pipelineDepth: configuration.pipelineDepth,
                    commitTimeout: configuration.commitTimeout, storesNewOrigins: true),
                now: localNow))
        activations[actor] = activation
        try deliver(envelope, to: actor)
    }

    /// `Node.sendRemote`.
    private func sendRemote(_ envelope: SimEnvelope, to actor: ActorID, owner: NodeID, address: PeerAddress) throws(DNAError) {
        guard envelope.hops < configuration.maxHops else {
            throw DNAError(.routingFailed, "\(actor): gave up after \(envelope.hops) forwards")
        }
        var requestID: UInt64 = 0
        if let reply = envelope.reply {
            requestID = nextRequestID
            nextRequestID += 1
            pending[requestID] = PendingSimCall(reply: reply, peer: address, owner: owner, actor: actor)
        }
        let wire = SimWireRequest(
            id: requestID, actor: actor, request: envelope.request, expectsReply: envelope.reply != nil, hops: envelope.hops,
            origin: envelope.origin == 0 ? "" : origins.name(of: envelope.origin), sequence: envelope.sequence)
        do throws(TransportError) {
            let attempt = try link(to: address).send(wire)
            if requestID != 0 { pending[requestID]?.attempt = attempt }
        } catch {
            if requestID != 0 { pending[requestID] = nil }
            throw DNAError(error.code == .overloaded ? .overloaded : .nodeUnreachable, error.message)
        }
    }

    /// `Node.receive(request)`.
    func receive(_ wire: SimWireRequest, on connection: SimConnection) {
        let reply: SimReply? = wire.expectsReply ? .remote(connection: connection, requestID: wire.id) : nil
        let sender = simulation.nodes[connection.from.slot]
        let senderID = "n\(sender.slot).\(connection.from.incarnation)"
        let contradicted = locations.owner(of: wire.actor) == NodeID(rawValue: senderID) && !leaving
        if contradicted { locations.forget(wire.actor, ifAt: NodeID(rawValue: senderID)) }
        let origin = origins.number(of: wire.origin.isEmpty ? senderID : wire.origin)
        let envelope = SimEnvelope(request: wire.request, reply: reply, hops: wire.hops + 1, origin: origin, sequence: wire.sequence)
        do throws(DNAError) {
            try deliver(envelope, to: wire.actor, claimHere: contradicted)
        } catch {
            if let reply { answer(reply, SimResult(error)) } else { simulation.count("cast.refused") }
        }
    }

    /// `Node.receive(response)`.
    func receive(response id: UInt64, _ result: SimResult) {
        guard let call = pending.removeValue(forKey: id) else { return }
        if case .failure(let code, _) = result {
            let routing: Set<String> = [
                DNAError.Code.fenced.name, DNAError.Code.nodeUnreachable.name, DNAError.Code.ownedElsewhere.name,
                DNAError.Code.nodeStopped.name, DNAError.Code.activationFailed.name, DNAError.Code.routingFailed.name,
            ]
            if routing.contains(code) { locations.forget(call.actor, ifAt: call.owner) }
        }
        answer(call.reply, result)
    }

    /// A connection of an outgoing link broke. As `OutgoingLink.failed`: if it was the
    /// link's current one, the link backs off and the node hears of it a moment later
    /// (the transport tells it on an event loop).
    func connectionBroke(_ connection: SimConnection) {
        let peer = nodeAddress(connection.to.slot)
        guard let link = links[peer], link.failed(connection) else { return }
        soon("link to \(peer) failed") { [self] in
            linkFailed(peer: peer, attempt: connection.attempt, error: TransportError(.unreachable, "connection closed by the peer"))
        }
    }

    /// `Node.linkFailed`: the link to `peer` failed: its unanswered calls fail, and actors
    /// believed to be there are looked up afresh.
    func linkFailed(peer: PeerAddress, attempt: UInt64, error: TransportError) {
        let failed = pending.keys.sorted().filter { pending[$0]!.peer == peer && pending[$0]!.attempt == attempt }
        var owners = Set(machine.members.nodes(at: peer))
        for requestID in failed { owners.insert(pending[requestID]!.owner) }
        locations.forget(owners: owners)
        for requestID in failed {
            let call = pending.removeValue(forKey: requestID)!
            answer(
                call.reply,
                .failure(code: DNAError.Code.nodeUnreachable.name, message: "node at \(peer) could not be reached: \(error.message)"))
        }
    }

    func nodeAddress(_ slot: Int) -> PeerAddress { PeerAddress(host: "node\(slot)", port: 7400) }

    /// An answer to `reply`: a local caller's, or one sent back on the connection its request came on.
    func answer(_ reply: SimReply, _ result: SimResult) {
        switch reply {
        case .client(let call):
            simulation.answered(call, result)
        case .remote(let connection, let requestID):
            guard connection.alive else { return }
            let arrival = max(simulation.now + simulation.latency(), connection.lastResponseArrival + 1)
            connection.lastResponseArrival = arrival
            let from = connection.from
            simulation.schedule(at: arrival, node: from, "answer \(requestID) arrives on connection \(connection.id)") {
                [simulation] in
                guard connection.alive else { return }
                simulation.nodes[from.slot].receive(response: requestID, result)
            }
        }
    }

    private func link(to address: PeerAddress) -> SimLink {
        if let link = links[address] { return link }
        let link = SimLink(node: self, peer: address)
        links[address] = link
        return link
    }

    // MARK: Activations

    private func resume(_ activation: SimActivation, _ waiter: Int) {
        guard activation.parkedWaiter == waiter else { return }
        activation.parkedWaiter = nil
        soon("resume \(activation.actor)") { [self] in drive(activation) }
    }

    /// `Activation.run`: carries out the machine's steps until it waits.
    func drive(_ activation: SimActivation) {
        while true {
            let step = activation.machine.nextStep(now: localNow, lease: machine.lease.snapshot)
            switch step {
            case .handle(let batch, let refused):
                for envelope in refused {
                    if let reply = envelope.reply {
                        answer(reply, .failure(code: DNAError.Code.outOfOrder.name, message: "overtaken"))
                    } else {
                        simulation.count("cast.droppedOutOfOrder")
                    }
                }
                handle(batch, in: activation, index: 0, operations: [], held: [])
                return
            case .activate:
                activate(activation)
                return
            case .commit(let batch):
                submit(batch, of: activation)
            case .wait(let until):
                let waiter = nextWaiter
                nextWaiter += 1
                guard activation.machine.park(waiter, now: localNow) else { continue }
                activation.parkedWaiter = waiter
                if let until {
                    simulation.schedule(at: globalTime(until), node: target, "retry time of \(activation.actor)") { [self] in
                        if let waiter = activation.machine.wake() { resume(activation, waiter) }
                    }
                }
                return
            case .reset(let failures, let registration):
                simulation.trace("\(activation.actor) resets")
                for failure in failures { for reply in failure.held { answer(reply.reply, SimResult(failure.error)) } }
                activation.instance = nil
                release(registration)
            case .stop(let failures, let queued, let refused, let error, _):
                simulation.trace("\(activation.actor) stops: \(error)")
                for envelope in refused {
                    if let reply = envelope.reply {
                        answer(reply, .failure(code: DNAError.Code.outOfOrder.name, message: "overtaken"))
                    } else {
                        simulation.count("cast.droppedOutOfOrder")
                    }
                }
                if activations[activation.actor] === activation { activations[activation.actor] = nil }
                activation.instance = nil
                for failure in failures { for reply in failure.held { answer(reply.reply, SimResult(failure.error)) } }
                // `Activation`: never handled here; they go wherever the name is now.
                for envelope in queued {
                    do throws(DNAError) { try deliver(envelope, to: activation.actor) } catch { failOrCount(envelope, error) }
                }
            case .deactivate(let registration):
                activation.instance = nil
                release(registration)
            case .migrate(let registration, let target, let reply):
                handOver(activation, registration, to: target, reply: reply)
                return
            case .storeOrder:
                if let state = activation.machine.takeOrderState(),
                    let batch = activation.machine.commitOrder(OrderState.encode(state, origins: origins), now: localNow)
                {
                    submit(batch, of: activation)
                }
            case .didCommit:
                continue
            case .exit:
                if let reply = activation.machine.takeAbandonedMigration() {
                    reply.resume(.failure(DNAError(.fenced, "stopped before it could move")))
                }
                return
            }
            if let reply = activation.machine.takeAbandonedMigration() {
                reply.resume(.failure(DNAError(.fenced, "stopped before it could move")))
            }
        }
    }

    // MARK: Draining

    /// `Node.drain`: report draining, send new names elsewhere, move every activation to
    /// the other serving nodes (the planner's shares), then record leaving, forward for two
    /// heartbeat intervals, and stop; the slot boots again later as a new node.
    func drain() {
        guard isUp, !paused, !draining, !machine.members.servingNodes(except: id).isEmpty else { return }
        draining = true
        simulation.count("drain.started")
        simulation.trace("\(id) drains")
        renewLease { _ in }
        drainRound(1)
    }

    private func drainRound(_ round: Int) {
        let remaining = activations.keys.sorted { $0.key < $1.key }
        let others = machine.members.servingNodes(except: id)
        if remaining.isEmpty || others.isEmpty || round > 100 {
            if !remaining.isEmpty { simulation.count("drain.gaveUp") }
            leave()
            return
        }
        let targets = Node.drainTargets(count: remaining.count, this: id, others: others)
        for (index, actor) in remaining.enumerated() {
            guard let activation = activations[actor] else { continue }
            let target = targets[index % targets.count]
            let reply = simulation.migrationReply(actor: actor, from: id, to: target)
            switch activation.machine.requestMigration(to: target, reply: reply) {
            case .accepted(let waiter):
                if let waiter { resume(activation, waiter) }
            case .acceptedStartTask:
                soon("start task of \(actor)") { [self] in drive(activation) }
            case .refused:
                break  // not active yet, or moving already: the next round
            }
        }
        after(.milliseconds(50), "drain round \(round + 1)") { [self] in drainRound(round + 1) }
    }

    private func leave() {
        guard activations.isEmpty else {
            // What could not move stops as at a crash; its names are taken over after the timeout.
            simulation.stopAfterDrain(slot)
            return
        }
        leaving = true
        let id = self.id
        simulation.storeCall(from: self, "leave") { state, now throws(StoreError) in
            try state.heartbeat(node: id, state: .left, activations: 0, now: now)
        } completion: { [self] _ in
            after(configuration.heartbeatInterval * 2 + .milliseconds(100), "stop after draining") { [self] in
                simulation.count("drain.left")
                simulation.stopAfterDrain(slot)
            }
        }
    }

    // MARK: Migration

    /// `Node.migrate`: a random activation of this node moves to a random live node.
    func migrateSomeActivation() {
        guard isUp, !paused else { return }
        let candidates = activations.keys.sorted { $0.key < $1.key }
        guard !candidates.isEmpty else { return }
        let actor = candidates[Int.random(in: 0..<candidates.count, using: &simulation.migrationRandom)]
        // As `Node.migrate` checks: the target is a live member serving here's view.
        let targets = machine.members.servingNodes(except: id)
        guard !targets.isEmpty, let activation = activations[actor] else { return }
        let target = targets[Int.random(in: 0..<targets.count, using: &simulation.migrationRandom)].id
        requestMove(activation, to: target)
    }

    private func requestMove(_ activation: SimActivation, to target: NodeID) {
        let actor = activation.actor
        let reply = simulation.migrationReply(actor: actor, from: id, to: target)
        switch activation.machine.requestMigration(to: target, reply: reply) {
        case .accepted(let waiter):
            simulation.trace("\(id) moves \(actor) to \(target)")
            if let waiter { resume(activation, waiter) }
        case .acceptedStartTask:
            simulation.trace("\(id) moves \(actor) to \(target)")
            soon("start task of \(actor)") { [self] in drive(activation) }
        case .refused(let reason):
            reply.resume(.failure(DNAError(.invalidArgument, reason)))
        }
    }

    /// `Node.rebalanceRound`: plans from the membership's loads (its own count live) with
    /// every move allowed, and moves away what the plan takes from this node.
    func rebalanceRound() {
        guard isUp, !paused, !draining else { return }
        let loads = machine.members.rebalanceLoads(this: id, thisLoad: activations.count, thisRole: .eligible, excludedLabels: [])
        guard let plan = try? RebalancePlanner.plan(nodes: loads, limits: .init(maxMoves: .max, maxFraction: 1)) else { return }
        simulation.count("rebalance.rounds")
        var candidates = activations.keys.sorted { $0.key < $1.key }[...]
        for move in plan.moves where move.from == .node(id) {
            for _ in 0..<move.count {
                guard let actor = candidates.popFirst(), let activation = activations[actor] else { break }
                requestMove(activation, to: move.to)
            }
        }
    }

    /// `Activation.handOver`: the store moves the name; whatever it answers, this activation
    /// stops and its queue follows the name.
    private func handOver(_ activation: SimActivation, _ registration: Registration, to target: NodeID, reply: MigrationReply) {
        simulation.storeCall(from: self, "hand \(registration.actor) over to \(target)") { state, _ throws(StoreError) in
            try state.handOver(registration, to: target)
        } completion: { [self] result in
            activation.instance = nil
            let (queued, _) = activation.machine.migrated()
            if activations[activation.actor] === activation { activations[activation.actor] = nil }
            switch result {
            case .success:
                simulation.trace("\(registration.actor) handed over to \(target)")
                if let address = machine.members.address(of: target) {
                    locations.record(target, for: activation.actor)
                    for envelope in queued {
                        do throws(DNAError) { try sendRemote(envelope, to: activation.actor, owner: target, address: address) } catch {
                            if let reply = envelope.reply { answer(reply, SimResult(error)) }
                        }
                    }
                } else {
                    redeliver(queued, to: activation.actor)
                }
                reply.resume(.success(()))
            case .failure(let error):
                simulation.trace("\(registration.actor) not handed over: \(error)")
                redeliver(queued, to: activation.actor)
                reply.resume(.failure(DNAError(.commitFailed, "not moved", underlying: error)))
            }
            drive(activation)
        }
    }

    private func redeliver(_ queued: [SimEnvelope], to actor: ActorID) {
        for envelope in queued {
            do throws(DNAError) { try deliver(envelope, to: actor) } catch {
                if let reply = envelope.reply { answer(reply, SimResult(error)) }
            }
        }
    }

    private func release(_ registration: Registration) {
        simulation.storeCall(from: self, "release \(registration.actor)") { state, _ in
            state.release(registration)
        } completion: { _ in
        }
    }

    private func submit(_ batch: CommitBatch, of activation: SimActivation) {
        simulation.storeCommit(from: self, batch) { [self] result in
            let action = activation.machine.commitCompleted(sequence: batch.sequence, result: result, now: localNow)
            for held in action.release { answer(held.reply, held.result) }
            if let waiter = action.resume { resume(activation, waiter) }
        }
    }

    /// Handles one message after another, each taking a little time (so a pause can fall
    /// in the middle of a batch); then hands the batch's writes to the machine.
    private func handle(_ batch: [SimEnvelope], in activation: SimActivation, index: Int, operations: [StorageOperation], held: [SimHeld]) {
        guard index < batch.count else {
            var order: [UInt8]?
            if let state = activation.machine.orderToStore(writes: !operations.isEmpty) {
                order = OrderState.encode(state, origins: origins)
            }
            // Like a consumer stage, each write also appends a record to the output stream
            // with the batch: the checks find each applied write there once, in commit order.
            let streams =
                operations.isEmpty
                ? StreamEffects.none
                : StreamEffects(appends: [
                    StreamEffects.Append(
                        stream: ClusterSimulation.outputStream,
                        records: operations.map { StreamAppendRecord(key: Array(activation.actor.description.utf8), value: $0.key) })
                ])
            switch activation.machine.handled(
                operations: operations, held: held, now: localNow, lease: machine.lease.snapshot, order: order, streams: streams)
            {
            case .none: break
            case .commit(let commit): submit(commit, of: activation)
            case .fail(let replies, let error):
                for reply in replies { answer(reply.reply, SimResult(error)) }
            case .release(let replies):
                if let registration = activation.machine.registration {
                    for _ in replies {
                        simulation.checkServing(
                            self, registration, generation: activation.machine.leaseGeneration, what: "a read-only batch")
                    }
                }
                for reply in replies { answer(reply.reply, reply.result) }
            }
            drive(activation)
            return
        }
        after(.microseconds(Int64.random(in: 20...400, using: &simulation.random)), "handle \(batch[index].request) in \(activation.actor)")
        {
            [self] in
            var operations = operations
            var held = held
            let envelope = batch[index]
            if let length = pauseInNextBatch {
                // The rest of the batch, and its replies, come after the pause.
                pauseInNextBatch = nil
                simulation.count("fault.pauseInBatch")
                simulation.pause(slot, for: length)
            }
            if let key = envelope.request.key {
                activation.instance?.insert(key)
                operations.append(StorageOperation(module: "w", key: Array(key.utf8), value: [1]))
            }
            if let reply = envelope.reply {
                if envelope.request.isImmediate {
                    guard activation.machine.mayAnswer(now: localNow, lease: machine.lease.snapshot) else {
                        answer(reply, SimResult(activation.machine.leaseLostError(wrote: envelope.request.key != nil)))
                        handle(batch, in: activation, index: index + 1, operations: operations, held: held)
                        return
                    }
                    if let registration = activation.machine.registration {
                        simulation.checkServing(
                            self, registration, generation: activation.machine.leaseGeneration, what: "an immediate read")
                    }
                    answer(reply, envelope.request.key == nil ? .read(activation.instance ?? []) : .success)
                } else {
                    held.append(SimHeld(reply: reply, result: envelope.request.key == nil ? .read(activation.instance ?? []) : .success))
                }
            }
            handle(batch, in: activation, index: index + 1, operations: operations, held: held)
        }
    }

    /// `Activation.activate`: renew the lease if it ran out, claim, load, and start.
    private func activate(_ activation: SimActivation) {
        guard machine.lease.holds(at: localNow) else {
            renewLease { [self] renewed in
                if renewed {
                    claim(activation)
                } else {
                    finishActivation(activation, .failed(DNAError(.activationFailed, "\(activation.actor): the store is unreachable")))
                }
            }
            return
        }
        claim(activation)
    }

    private func claim(_ activation: SimActivation) {
        let generation = machine.lease.snapshot.generation
        let request = ActivationRequest(actor: activation.actor, node: id, silentNodes: machine.silence.silentNodes(at: localNow))
        simulation.storeCall(from: self, "claim \(activation.actor)") { state, now throws(StoreError) in
            try state.activate(request, now: now)
        } completion: { [self] result in
            switch result {
            case .success(.granted(let registration, var rows)):
                simulation.trace("\(id) holds \(activation.actor) at epoch \(registration.epoch)")
                activation.machine.restoreOrder(OrderState.take(from: &rows, origins: origins))
                activation.instance = Set(rows.map { String(decoding: $0.key, as: UTF8.self) })
                finishActivation(activation, .granted(registration, leaseGeneration: generation, operations: []))
            case .success(.ownedElsewhere(let owner)):
                guard let address = machine.members.address(of: owner) else {
                    finishActivation(activation, .failed(DNAError(.ownedElsewhere, "\(activation.actor) is active on \(owner)")))
                    return
                }
                // `Node.relocate`: the queue goes to the owner, in order, and the location is remembered.
                let (queued, refused, _) = activation.machine.stopAndTakeQueue()
                for envelope in refused {
                    if let reply = envelope.reply {
                        answer(reply, .failure(code: DNAError.Code.outOfOrder.name, message: "overtaken"))
                    } else {
                        simulation.count("cast.droppedOutOfOrder")
                    }
                }
                if activations[activation.actor] === activation { activations[activation.actor] = nil }
                locations.record(owner, for: activation.actor)
                for envelope in queued {
                    do throws(DNAError) { try sendRemote(envelope, to: activation.actor, owner: owner, address: address) } catch {
                        failOrCount(envelope, error)
                    }
                }
            case .failure(let error):
                finishActivation(
                    activation, .failed(DNAError(.activationFailed, "\(activation.actor) could not be activated", underlying: error)))
            }
        }
    }

    private func finishActivation(_ activation: SimActivation, _ outcome: Machine.ActivationOutcome) {
        switch activation.machine.activated(outcome, now: localNow) {
        case .none:
            break
        case .commit(let batch):
            submit(batch, of: activation)
        case .stop(let queued, let error, _):
            if activations[activation.actor] === activation { activations[activation.actor] = nil }
            for envelope in queued { failOrCount(envelope, error) }
            return
        }
        drive(activation)
    }

    /// `Node.failOrCount`: a call is answered with `error`; a cast is counted as dropped.
    private func failOrCount(_ envelope: SimEnvelope, _ error: DNAError) {
        if let reply = envelope.reply {
            answer(reply, SimResult(error))
        } else {
            simulation.count("cast.dropped")
        }
    }

    // MARK: Clients

    /// A client on this node calls `actor`.
    func call(_ request: SimRequest, to actor: ActorID, id call: Int) {
        do throws(DNAError) {
            try deliver(SimEnvelope(request: request, reply: .client(call: call), hops: 0), to: actor)
        } catch {
            simulation.answered(call, SimResult(error))
        }
    }

    func cast(_ request: SimRequest, to actor: ActorID) {
        do throws(DNAError) {
            try deliver(SimEnvelope(request: request, reply: nil, hops: 0), to: actor)
        } catch {
            simulation.count("cast.failedAtSend")
        }
    }

    func clientAfter(_ delay: Duration, _ label: String, _ action: @escaping () -> Void) { after(delay, label, action) }

    func nextSequence() -> UInt64 {
        lastSequence += 1
        return lastSequence
    }
}

final class SimActivation {
    let actor: ActorID
    var machine: SimNode.Machine
    /// The actor's memory: the keys it wrote.
    var instance: Set<String>?
    var parkedWaiter: Int?

    init(actor: ActorID, machine: SimNode.Machine) {
        self.actor = actor
        self.machine = machine
    }
}

struct PendingSimCall {
    var reply: SimReply
    var peer: PeerAddress
    var attempt: UInt64 = 0
    var owner: NodeID
    var actor: ActorID
}

/// `OutgoingLink` of the simulation: the same `LinkStateMachine` over simulated connections.
final class SimLink {
    unowned let node: SimNode
    let peer: PeerAddress
    var machine: LinkStateMachine<SimConnection>
    var queued: [SimWireRequest] = []
    var connection: SimConnection?

    init(node: SimNode, peer: PeerAddress) {
        self.node = node
        self.peer = peer
        machine = LinkStateMachine(
            initialDelay: .milliseconds(50), maximumDelay: .seconds(2), flushWindow: .zero, maxQueuedBytes: 1 << 20)
    }

    private var simulation: ClusterSimulation { node.simulation }
    private var now: NIODeadline { .uptimeNanoseconds(UInt64(max(0, node.localNow.nanoseconds))) }

    /// Returns the connection attempt that carries the request.
    func send(_ request: SimWireRequest) throws(TransportError) -> UInt64 {
        switch machine.send(length: 64, now: now) {
        case .queued:
            queued.append(numbered(request))
        case .connect(let attempt):
            queued = [numbered(request)]
            connect(attempt)
        case .flush(let connection, _, _):
            queued.append(numbered(request))
            flush(connection)
        case .failFast(let error):
            throw error
        case .overloaded(let bytes):
            throw TransportError(.overloaded, "link to \(peer) holds \(bytes) bytes")
        }
        return machine.attempt
    }

    private func numbered(_ request: SimWireRequest) -> SimWireRequest {
        var request = request
        if request.sequence == 0 { request.sequence = node.nextSequence() }
        return request
    }

    func connectIfDisconnected() {
        if let attempt = machine.connectIfDisconnected(now: now) {
            queued = []
            connect(attempt)
        }
    }

    private func connect(_ attempt: UInt64) {
        guard let slot = Int(peer.host.dropFirst("node".count)), slot < simulation.nodes.count else { return }
        let target = simulation.nodes[slot]
        let from = node.target
        let delay = simulation.latency() * 2
        simulation.schedule(at: simulation.now + delay, node: from, "connection attempt \(attempt) to \(peer)") { [self] in
            guard target.isUp else {
                failed(attempt: attempt, error: TransportError(.unreachable, "connection refused"))
                return
            }
            simulation.nextConnectionID += 1
            let connection = SimConnection(
                id: simulation.nextConnectionID, from: from, to: target.target, attempt: attempt)
            simulation.register(connection)
            // The handshake needs the peer to answer: a paused peer answers when it resumes.
            simulation.schedule(at: simulation.now + simulation.latency(), node: target.target, "handshake \(connection.id)") {
                [self] in
                simulation.schedule(at: simulation.now + simulation.latency(), node: from, "handshake \(connection.id) done") {
                    [self] in
                    guard connection.alive else { return }
                    if machine.handshakeCompleted(attempt: attempt, channel: connection, writable: true) {
                        self.connection = connection
                        flush(connection)
                    } else {
                        connection.alive = false
                    }
                }
            }
            simulation.schedule(at: simulation.now + 5_000_000_000, node: from, "handshake timeout \(connection.id)") { [self] in
                guard self.connection !== connection else { return }
                connection.alive = false
                failed(attempt: attempt, error: TransportError(.handshakeFailed, "handshake timed out"))
            }
        }
    }

    private func failed(attempt: UInt64, error: TransportError) {
        guard machine.failed(attempt: attempt, now: now) != nil else { return }
        queued = []
        let peer = self.peer
        simulation.schedule(at: simulation.now + 1_000, node: node.target, "link to \(peer) failed") { [node] in
            node.linkFailed(peer: peer, attempt: attempt, error: error)
        }
    }

    /// The connection broke: the link backs off if it was its current one (then `true`).
    func failed(_ connection: SimConnection) -> Bool {
        guard machine.failed(attempt: connection.attempt, now: now) != nil else { return false }
        queued = []
        if self.connection === connection { self.connection = nil }
        return true
    }

    private func flush(_ connection: SimConnection) {
        guard machine.flush(attempt: connection.attempt, now: now) != nil else { return }
        let requests = queued
        queued = []
        let to = connection.to
        for request in requests {
            let arrival = max(simulation.now + simulation.latency(), connection.lastRequestArrival + 1)
            connection.lastRequestArrival = arrival
            simulation.schedule(at: arrival, node: to, "\(request.request) for \(request.actor) arrives from \(node.id)") {
                [simulation] in
                guard connection.alive else { return }
                simulation.nodes[to.slot].receive(request, on: connection)
            }
        }
    }
}
