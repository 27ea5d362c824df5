import DNATransport
import Logging
import Metrics
public import ServiceLifecycle
import Synchronization
import Tracing

/// A DNA node: hosts activations of the actor types it was given, and runs them against a
/// store.
///
/// ```swift
/// let node = try await Node(configuration: .init(store: .sqlite(path: "dna.db")), actors: [Bench.self])
/// let bench = try node.ref(Bench.self, key: "bench-1")
/// try bench.cast(Put(key: "a", value: "b"))
/// try await bench.call(Put(key: "c", value: "d"))   // returns once durable
/// ```
///
/// References work as soon as the node is made. Its background duties (heartbeats,
/// passivation of idle activations) run in ``run()``: run the node as a
/// swift-service-lifecycle `Service`, whose graceful shutdown lets every activation finish
/// and commit, gives its names back and closes the store. ``shutdown()`` does the same
/// without a service group.
public final class Node: Service, Sendable {
    /// This node's generational identity.
    public let id: NodeID
    /// The configuration the node was made with.
    public let configuration: Configuration
    /// The store the node keeps its data in: streams are created, appended to and read
    /// through it (`ActorStore.append(_:to:producer:)`). Actors' own data is theirs:
    /// change it through their messages.
    public let store: any ActorStore
    /// The connections to other nodes; `nil` for a single node.
    let transport: (any NodeTransport)?
    /// Where the node's tasks run: `nil` (the global executor) except in the simulation.
    let taskExecutor: (any TaskExecutor)?
    /// Calls sent to other nodes, waiting for their answers.
    let calls = CallsInFlight()
    let logger: Logger
    let metrics: NodeMetrics
    let eventHub = NodeEventHub()
    /// The process's tracer, when one was bootstrapped before the node was made (then
    /// calls, forwards, handlers and commits make spans, and requests carry the trace
    /// context between nodes); `nil` costs nothing per message.
    let tracer: (any Tracer)?
    private let ownsStore: Bool
    /// The node holds its embedded file alone: every other node recorded in it is dead.
    private let exclusive: Bool
    typealias Lifecycle = NodeLifecycle<UnsafeContinuation<Void, any Error>, UnsafeContinuation<Void, Never>>
    typealias Machine = NodeStateMachine<UnsafeContinuation<Void, any Error>, UnsafeContinuation<Void, Never>>
    /// The node's decisions — life, lease, membership, rebalancing timing — behind its one
    /// lock (see ``NodeStateMachine``); changed only through ``update(_:)``.
    let machine: Mutex<Machine>
    /// The life's snapshot, published with every change: what the paths of every message read.
    private let lifeBits = Atomic<UInt8>(Lifecycle().snapshot.bits)
    /// Ends ``run()``'s serving: graceful shutdown, cancellation or ``shutdown()``.
    let stopRequested = OnceSignal()
    let kinds: [String: any AnyKindRuntime]
    /// What only some actor types need (pipelines), made for this node's (``NodeFeature``).
    let features: [any NodeFeature]
    /// Whether the node serves only while its heartbeats are fresh: in a cluster, other
    /// nodes take its names once they stop, so it must stop serving before they can.
    private let leaseEnforced: Bool
    /// Where the node reads the time (``Configuration/clock``).
    let clock: any DNAClock

    struct Directory {
        var activations: [ActorID: any AnyActivation] = [:]
    }

    let directory = Mutex(Directory())
    /// Where actors active on other nodes were last found. Read and written with the
    /// directory locked (taken after it); the transport's callbacks take only its lock,
    /// so the directory may stay locked while sending.
    let locations = LocationCache()
    /// See ``ReceivedRoute``.
    let lastReceivedRoute = Mutex<ReceivedRoute?>(nil)
    /// Numbers what this node sends, local or remote (see ``OrderedMessage``).
    let sequencer = RequestSequencer()
    /// The nodes requests come from, numbered for the activations (0: this node).
    let origins: OriginTable
    /// The order of the requests of the clients connected to this node (see ``ClientOrder``).
    let clientOrder = ClientOrder()
    /// Requests received since it left: it stops once they stop coming.
    let receivedAfterLeaving = Atomic<Int>(0)
    /// The state its heartbeats report while it serves.
    var servingState: NodeState { lifeSnapshot.servingState }

    /// The node's life now, without taking its lock.
    var lifeSnapshot: Lifecycle.Snapshot { Lifecycle.Snapshot(bits: lifeBits.load(ordering: .acquiring)) }

    /// Feeds the node's state machine an event (under its lock) and publishes the life's
    /// snapshot.
    @discardableResult
    func update<T>(_ body: (inout Machine) -> T) -> T {
        machine.withLock { machine in
            let result = body(&machine)
            lifeBits.store(machine.life.snapshot.bits, ordering: .releasing)
            return result
        }
    }

    /// Changes the node's life (see ``update(_:)``).
    @discardableResult
    func updateLife<T>(_ body: (inout Lifecycle) -> T) -> T { update { body(&$0.life) } }

    /// The membership as the node last read it from the store (a copy: one consistent view).
    var membership: Membership { machine.withLock { $0.members } }

    /// Why the node failed to start, if it did.
    var startFailure: (any Error)? { machine.withLock { $0.life.failure } }

    /// Makes a node that will host `actors`. No I/O: the store is opened, the listener
    /// bound and the cluster joined in ``run()``. References work at once; messages sent
    /// before the node is running wait for it (or fail with its start-up error).
    ///
    /// - Throws: ``DNAError`` for an invalid configuration or two actor types with one
    ///   kind; `StoreError` for store settings that cannot be used;
    ///   `TransportError` for transport or TLS settings that cannot be used.
    public init(configuration: Configuration, actors: [any DurableActor.Type]) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = configuration.logger
        self.clock = configuration.clock
        let tracer = InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
        let id = configuration.simulated?.nodeID ?? NodeID.random()
        self.id = id
        self.machine = Mutex(
            Machine(
                this: id, failureTimeout: configuration.failureTimeout,
                rebalance: RebalanceTiming(
                    enabled: configuration.rebalancing.enabled, interval: configuration.rebalancing.interval,
                    heartbeatInterval: configuration.heartbeatInterval)))
        self.taskExecutor = configuration.simulated?.executor
        self.metrics = NodeMetrics(factory: configuration.simulated?.metrics ?? MetricsSystem.factory)
        self.origins = OriginTable(this: id.rawValue)
        var kinds: [String: any AnyKindRuntime] = [:]
        let features = Self.featureMakers.compactMap { $0(actors) }
        for type in actors + features.flatMap(\.ownActors) {
            let kind = Self.kindRuntime(type, placement: configuration.placement, features: features)
            try ActorID.validateSegment(kind.name, what: "kind")
            guard kinds.updateValue(kind, forKey: kind.name) == nil else {
                throw DNAError(.invalidArgument, "two actor types have the kind '\(kind.name)'")
            }
        }
        self.kinds = kinds
        self.features = features
        let made = try configuration.store.make(configuration.listen != nil)
        store = made.store
        ownsStore = made.ownedByNode
        exclusive = made.exclusive
        leaseEnforced = configuration.listen != nil
        let proxy = TransportDelegateProxy()
        if let simulated = configuration.simulated, configuration.listen != nil {
            transport = simulated.makeTransport(proxy, sequencer)
        } else if let listen = configuration.listen, let secret = configuration.secret {
            var settings = TransportConfiguration(cluster: configuration.clusterName, nodeID: id.rawValue, secret: secret)
            settings.host = listen.host
            settings.port = listen.port
            settings.maxFrameSize = configuration.maxFrameSize
            settings.logger = configuration.logger
            settings.tls = configuration.tls
            settings.sequencer = sequencer
            transport = try ClusterTransport(configuration: settings, delegate: proxy)
        } else {
            transport = nil
        }
        proxy.weakNode.withLock { $0.value = self }
    }

    /// The address other nodes reach this one at (`"local"` for a single node, and until
    /// ``run()`` has bound the listener).
    public var advertisedAddress: String { machine.withLock { $0.life.advertisedAddress } }

    /// Returns once the node runs (its store open, its listener bound, the cluster joined).
    ///
    /// - Throws: what made ``run()`` fail to start, or ``DNAError/Code/nodeStopped`` if the
    ///   node stopped (or was shut down before it started).
    public func waitUntilReady() async throws {
        if lifeSnapshot.isServing { return }
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            switch updateLife({ $0.waitUntilReady(continuation) }) {
            case .ready: continuation.resume()
            case .failed(let error): continuation.resume(throwing: error)
            case .stopped: continuation.resume(throwing: DNAError(.nodeStopped, "node \(id) stopped"))
            case .wait: break
            }
        }
    }

    /// Runs `body` with the node running (``run()`` beside it), then shuts the node down:
    /// for programs and tests that do not use a `ServiceGroup`.
    ///
    /// ```swift
    /// let node = try Node(configuration: .init(store: .sqlite(path: "dna.db")), actors: [Store.self])
    /// try await node.withRunning { node in
    ///     try await node.ref(Store.self, key: "store-1").call(Put(key: "a", value: "b"))
    /// }
    /// ```
    public func withRunning<T>(_ body: (Node) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            let result: T
            do {
                try await waitUntilReady()
                result = try await body(self)
            } catch {
                await shutdown()
                try? await group.waitForAll()
                throw error
            }
            await shutdown()
            try await group.waitForAll()
            return result
        }
    }

    private static func kindRuntime<A: DurableActor>(
        _ type: A.Type, placement: Placement, features: [any NodeFeature]
    ) -> any AnyKindRuntime {
        KindRuntime(type, placement: placement, features: features)
    }

    /// A reference to the actor of type `A` named `key` (in ``Configuration/namespace``
    /// unless `namespace` is given).
    ///
    /// - Throws: ``DNAError/Code/invalidName`` for an empty or too long name (see
    ///   `ActorID`), ``DNAError/Code/unknownActorKind`` if `A` was not given to the node.
    public func ref<A: DurableActor>(_ type: A.Type, key: String, namespace: String? = nil) throws(DNAError) -> ActorRef<A> {
        let id = ActorID(namespace: namespace ?? configuration.namespace, kind: A.kind.name, key: key)
        do { try id.validate() } catch { throw DNAError(.invalidName, error.message, underlying: error) }
        guard let kind = kinds[A.kind.name] as? KindRuntime<A> else {
            throw DNAError(.unknownActorKind, "actor type \(A.self) (kind '\(A.kind)') was not given to this node")
        }
        return ActorRef(target: ActorTarget(id: id, node: self, kind: kind))
    }

    /// The number of activations on this node now.
    public var activationCount: Int { directory.withLock { $0.activations.count } }

    // MARK: Delivery

    /// Whether the node takes messages (it does until shutdown begins).
    var isAccepting: Bool { lifeSnapshot.isAccepting }

    func mailboxFull(_ id: ActorID) -> DNAError {
        DNAError(.mailboxFull, "\(id) has \(configuration.mailboxCapacity) messages queued")
    }

    /// Puts `envelope` in the mailbox of the activation of `id`, making one if needed, or
    /// sends it to the node where the actor is active. Returns the route it took, for the
    /// sender to remember.
    ///
    /// - Throws: only if the envelope was neither queued nor sent (its reply untouched).
    /// `claimHere`: the node this node believed to host the actor sent the envelope here;
    /// one of them is wrong, so the store decides: a local activation claims the name (and
    /// follows it to its owner if the store says so).
    @discardableResult
    func deliver(
        _ envelope: Envelope, to id: ActorID, kind: any AnyKindRuntime, claimHere: Bool = false, from sender: NodeID? = nil
    ) throws(DNAError) -> CachedRoute {
        while true {
            let route: CachedRoute = try directory.withLock { directory throws(DNAError) in
                // Read under the directory's lock, which stopping takes to change it.
                let life = lifeSnapshot
                let existing = directory.activations[id]
                var decision = RoutingDecision(
                    accepting: life.isAccepting, hasLocalActivation: existing != nil, clustered: transport != nil,
                    claimHere: claimHere, drained: life.drained, hasLeft: life.hasLeft, hops: envelope.hops,
                    placement: kind.placement, labels: configuration.labels)
                decision.sender = sender
                while true {
                    switch decision.next() {
                    case .useLocal:
                        return .local(existing!)
                    case .activateHere:
                        let created = kind.makeActivation(id: id, node: self)
                        directory.activations[id] = created
                        return .local(created)
                    case .forward(let owner, let address, let generation):
                        return .remote(owner: owner, address: address, generation: generation)
                    case .refuse(let refusal):
                        throw refusal.error(node: self.id, actor: id)
                    case .lookUp(let question):
                        decision.record(answer(question, about: id, thisLoad: directory.activations.count), for: question)
                    }
                }
            }
            switch route {
            case .local(let activation):
                switch activation.enqueue(envelope) {
                case .accepted: return route
                case .full: throw mailboxFull(id)
                case .stopped: continue  // it just stopped and left the directory: look again
                }
            case .remote(let owner, let address, _):
                try sendRemote(envelope, to: id, kind: kind, owner: owner, address: address)
                return route
            }
        }
    }

    /// Answers the routing decision's question (with the directory locked).
    private func answer(_ question: RoutingDecision.Question, about id: ActorID, thisLoad: Int) -> RoutingDecision.Answer {
        switch question {
        case .cachedLocation:
            // Before the owner: a change after this read shows as a new generation.
            let generation = locations.generation
            guard let owner = locations.owner(of: id), let (address, dead) = membership.addressAndDeath(of: owner) else { return .nobody }
            if dead {
                locations.forget(id, ifAt: owner)
                return .dead(owner)
            }
            return .node(owner, address, generation: generation)
        case .hashedNode:
            return .placed(membership.placement(of: id, this: self.id))
        case .lessLoadedNode:
            return .placed(membership.leastLoaded(this: self.id, thisLoad: thisLoad))
        case .labelledNode(let label):
            return .placed(membership.placement(of: id, excluding: self.id, label: label))
        case .otherNode:
            return .placed(membership.placement(of: id, excluding: self.id))
        }
    }

    /// Casts to an actor known only by name (used for messages an actor sends itself).
    func cast<R: ActorRequest>(_ request: R, to id: ActorID) throws(DNAError) {
        guard let kind = kinds[id.kind] else { throw DNAError(.unknownActorKind, "no actor kind '\(id.kind)' on this node") }
        try ActorTarget(id: id, node: self, kind: kind).send(R.self, MessageBox(request), reply: nil)
    }

    /// Starts an unstructured task of the node's (on its executor, see ``taskExecutor``).
    func spawn(_ operation: sending @escaping @isolated(any) () async -> Void) {
        Task(executorPreference: taskExecutor, operation: operation)
    }

    /// Removes the activation from the directory (if it is still the one there).
    func removeFromDirectory(_ activation: any AnyActivation) {
        directory.withLock { directory in
            if let current = directory.activations[activation.id], current === activation {
                directory.activations[activation.id] = nil
            }
        }
    }

    // MARK: Background duties

    /// Opens the store (if the node made it), binds the listener, joins the cluster, then
    /// writes heartbeats and passivates idle activations until graceful shutdown (as a
    /// swift-service-lifecycle `Service`), cancellation or ``shutdown()``; then lets every
    /// activation finish and commit, gives the names back, leaves the cluster and closes
    /// the store it opened.
    ///
    /// - Throws: what kept the node from starting: `StoreError` (not a DNA database,
    ///   damaged, in use by another node, unreachable), NIO's error if the address cannot
    ///   be bound. Calls waiting for the node fail with the same error.
    public func run() async throws {
        guard updateLife({ $0.begin() }) else {
            throw DNAError(.invalidArgument, "node \(id): run() was called already, or the node was shut down")
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            if ownsStore {
                let store = self.store
                group.addTask {
                    // Out of reach of graceful shutdown (a task-local that child tasks
                    // inherit, which PostgreSQL's client obeys by closing its pool at once):
                    // the store must outlive the node's own stopping — the drain, the last
                    // commits, recording that it left — and is ended below, by cancellation.
                    let running = Task.detached { try await store.run() }
                    try await withTaskCancellationHandler {
                        try await running.value
                    } onCancel: {
                        running.cancel()
                    }
                }
            }
            do {
                try await start()
            } catch {
                await transport?.shutdown()
                group.cancelAll()
                try? await group.waitForAll()
                becomeFailed(error)
                await settleActivations()
                throw error
            }
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.passivationLoop() }
            group.addTask { await self.retentionLoop() }
            group.addTask { await self.alarmLoop() }
            for feature in features { group.addTask { await feature.run(on: self) } }
            if transport != nil { group.addTask { await self.rebalanceLoop() } }
            let stopRequested = self.stopRequested
            await withGracefulShutdownHandler {
                await stopRequested.wait()
            } onGracefulShutdown: {
                stopRequested.signal()
            }
            await stopServing()
            group.cancelAll()
            try? await group.waitForAll()
        }
        finishStopping()
    }

    /// Opens the store, binds, joins, takes the lease; then the node is ready.
    private func start() async throws {
        try await store.open()
        var address = configuration.advertisedAddress
        if let transport, let listen = configuration.listen {
            let port = try await transport.start()
            if address == "local" { address = PeerAddress(host: listen.host, port: port).description }
        }
        updateLife { $0.advertisedAddress = address }
        try await store.join(
            node: id, cluster: configuration.clusterName, address: address, failureTimeout: configuration.failureTimeout,
            labels: configuration.labels)
        if exclusive {
            // We hold the file alone: every other node recorded in it is dead.
            try await store.evictOtherNodes(cluster: configuration.clusterName, keeping: id)
        }
        try await renewLease(state: .up)
        if transport != nil { try await refreshMembers() }
        for waiter in updateLife({ $0.started(address: address) }) { waiter.resume() }
        logger.info("node up", metadata: ["node": "\(id)", "cluster": "\(configuration.clusterName)", "address": "\(address)"])
    }

    private func becomeFailed(_ error: any Error) {
        let (readyWaiters, stopWaiters) = updateLife { $0.failedToStart(error) }
        for waiter in readyWaiters { waiter.resume(throwing: error) }
        for waiter in stopWaiters { waiter.resume() }
        logger.error("node could not start", metadata: ["node": "\(id)", "error": "\(error)"])
    }

    private func finishStopping() {
        let (waiters, readyWaiters) = updateLife { $0.finished() }
        eventHub.finish()
        for waiter in readyWaiters { waiter.resume(throwing: DNAError(.nodeStopped, "node \(id) stopped")) }
        for waiter in waiters { waiter.resume() }
    }

    /// After a drain that left nothing here: the node records that it left, then forwards
    /// what still comes (the others learn of it at their next membership read and stop
    /// sending here) for as long as ``DrainTiming/Forwarding`` says.
    /// Returns whether the store recorded it.
    private func leaveAfterDraining() async -> Bool {
        // It claims nothing from the moment it finds it holds nothing (checked and marked
        // under the directory's lock, where activations are made): once the store has it
        // `left`, any node may take its names at once, so an activation made after the check
        // (by a hand-over's wake, say) would serve a name another node holds.
        let holdsNothing = directory.withLock { directory -> Bool in
            guard directory.activations.isEmpty else { return false }
            updateLife { $0.leftCluster() }
            return true
        }
        guard holdsNothing else { return false }
        do { try await store.heartbeat(node: id, state: .left, activations: 0) } catch {
            logger.warning("could not record leaving", metadata: ["error": "\(error)"])
            return false
        }
        noteSelf(.left, .nodeLeft(id))
        var forwarding = DrainTiming.Forwarding(
            start: clock.now, received: receivedAfterLeaving.load(ordering: .relaxed), heartbeatInterval: configuration.heartbeatInterval,
            failureTimeout: configuration.failureTimeout)
        repeat {
            do { try await clock.sleep(for: configuration.heartbeatInterval) } catch { return true }
        } while forwarding.tick(now: clock.now, received: receivedAfterLeaving.load(ordering: .relaxed))
        return true
    }

    private func heartbeatLoop() async {
        // Gone nodes' rows are deleted about once a minute, not every round.
        let pruneEvery = max(1, Int(Duration.seconds(60) / configuration.heartbeatInterval))
        var round = 0
        while !Task.isCancelled {
            do { try await clock.sleep(for: configuration.heartbeatInterval) } catch { return }
            if lifeSnapshot.hasLeft { return }
            do {
                try await renewLease(state: servingState)
            } catch {
                if error.code == .fenced {
                    logger.error("the store says this node left the cluster; it serves nothing more", metadata: ["error": "\(error)"])
                } else {
                    logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
                }
                continue
            }
            if transport != nil {
                do { try await refreshMembers() } catch {
                    logger.warning("could not read the cluster's nodes", metadata: ["error": "\(error)"])
                }
            }
            round += 1
            if round % pruneEvery == 0 {
                do {
                    let forgotten = try await store.forgetNodes(
                        cluster: configuration.clusterName, goneFor: configuration.goneNodeRetention)
                    if forgotten > 0 { logger.debug("forgot nodes that are gone", metadata: ["nodes": "\(forgotten)"]) }
                } catch {
                    logger.debug("could not forget gone nodes", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Streams' retention, about once a minute, by one node: the live one with the lowest
    /// id. A loop of its own: trimming a large backlog takes as long as it takes, and must
    /// not hold up the heartbeats (the node would lose its lease).
    private func retentionLoop() async {
        while !Task.isCancelled {
            do { try await clock.sleep(for: configuration.simulated?.retentionInterval ?? .seconds(60)) } catch { return }
            if lifeSnapshot.hasLeft { return }
            guard !membership.servingNodes(except: id).contains(where: { $0.id.rawValue < id.rawValue }) else { continue }
            do {
                let trimmed = try await store.trimStreams()
                if trimmed > 0 { logger.debug("stream records past their retention deleted", metadata: ["records": "\(trimmed)"]) }
            } catch {
                logger.warning("could not apply stream retention", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Lease

    /// Whether the node may serve its activations: it wrote a heartbeat recently enough
    /// that no other node can have taken its names (see ``Configuration/failureTimeout``).
    var holdsLease: Bool {
        guard leaseEnforced else { return true }
        let now = clock.now
        return machine.withLock { $0.lease.holds(at: now) }
    }

    /// What activations check before serving: the deadline and the generation of the lease.
    var leaseSnapshot: NodeLease.Snapshot {
        guard leaseEnforced else { return NodeLease.Snapshot(deadline: DNAInstant(nanoseconds: .max), generation: 0) }
        return machine.withLock { $0.lease.snapshot }
    }

    /// The lease an activation made now serves under.
    var currentLeaseGeneration: UInt64 { leaseSnapshot.generation }

    /// Writes a heartbeat; on success the node may serve until 80% of the failure timeout
    /// after the moment it was sent (other nodes measure from when the store wrote it, later).
    func renewLease(state: NodeState) async throws(StoreError) {
        let sent = clock.now
        let heartbeat = update { $0.heartbeatSent(at: sent) }
        let hosted = activationCount
        metrics.activationsHosted.record(hosted)
        try await store.heartbeat(node: id, state: state, activations: Int64(hosted))
        let acknowledged = clock.now
        update { $0.heartbeatSucceeded(heartbeat, at: acknowledged) }
    }

    private func passivationLoop() async {
        let interval = min(max(configuration.idleTimeout / 4, .milliseconds(10)), .seconds(5))
        while !Task.isCancelled {
            do { try await clock.sleep(for: interval) } catch { return }
            await passivateIdle(olderThan: configuration.idleTimeout)
        }
    }

    /// Passivates every activation idle for longer than `idleTime`: frees its memory and
    /// gives its name back. Its data stays in the store.
    public func passivateIdle(olderThan idleTime: Duration) async {
        let cutoff = clock.now - idleTime
        let candidates = directory.withLock { Array($0.activations.values) }
        for activation in candidates {
            if stop(activation, since: cutoff) { await activation.finishStop() }
        }
    }

    func stop(_ activation: any AnyActivation, since cutoff: DNAInstant?) -> Bool {
        directory.withLock { directory in
            guard activation.stopIfIdle(since: cutoff) else { return false }
            if let current = directory.activations[activation.id], current === activation {
                directory.activations[activation.id] = nil
            }
            return true
        }
    }

    /// Shuts the node down as a graceful shutdown of ``run()`` does, and returns once it
    /// is done (at once if the node never ran). Safe to call more than once.
    public func shutdown() async {
        var neverRan: [UnsafeContinuation<Void, any Error>] = []
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            switch updateLife({ $0.shutdownRequested(continuation) }) {
            case .done:
                continuation.resume()
            case .neverRan(let readyWaiters):
                neverRan = readyWaiters
                continuation.resume()
            case .wait:
                break
            }
            stopRequested.signal()
        }
        guard lifeSnapshot.phase == .stopped else { return }
        // Calls that waited for a node that never ran; activations they made settle before
        // the node is released.
        for waiter in neverRan { waiter.resume(throwing: DNAError(.nodeStopped, "node \(id) was shut down")) }
        await settleActivations()
    }

    /// Waits until no activation has a task running: they hold the node `unowned`, so it
    /// must outlive them (after a start that failed, or a shutdown before it ran).
    func settleActivations() async {
        let remaining = directory.withLock { Array($0.activations.values) }
        for activation in remaining { await activation.waitUntilIdle() }
    }

    /// Stops taking messages, lets every activation handle what it has and commit, gives
    /// the names back, marks the node `left` and closes the transport.
    private func stopServing() async {
        if configuration.drainOnShutdown || machine.withLock({ $0.life.drainRequested }), transport != nil,
            !lifeSnapshot.drained,
            !membership.servingNodes(except: id).isEmpty
        {
            let report = await moveActivationsAway()
            logger.info("drained before stopping", metadata: ["moved": "\(report.moved)", "stopped": "\(report.stopped)"])
        }
        var recordedLeaving = false
        if lifeSnapshot.drained { recordedLeaving = await leaveAfterDraining() }
        // Under the directory's lock: a delivery sees the node accepting, and its activation
        // in the directory, or neither.
        directory.withLock { _ in updateLife { $0.beginStopping() } }
        while true {
            let remaining = directory.withLock { Array($0.activations.values) }
            if remaining.isEmpty { break }
            for activation in remaining {
                await activation.waitUntilIdle()
                if stop(activation, since: nil) { await activation.finishStop() }
            }
        }
        if !recordedLeaving {
            do {
                try await store.heartbeat(node: id, state: .left, activations: 0)
                noteSelf(.left, .nodeLeft(id))
            } catch {
                logger.warning("could not record leaving", metadata: ["error": "\(error)"])
            }
        }
        await transport?.shutdown()
        failAllPendingCalls(DNAError(.nodeStopped, "node \(id) stopped before the answer came"))
        logger.info("node stopped", metadata: ["node": "\(id)"])
    }
}
