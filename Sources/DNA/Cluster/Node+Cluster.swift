import DNATransport
import Logging
import Synchronization
import Tracing
import CoreMetrics

/// Routing between nodes: sending to actors active elsewhere, handling what other nodes
/// send, and following an actor to the node that owns it.
extension Node {
    /// Sends `envelope` to `owner`. Registers the reply (if any) to be resumed when the
    /// answer comes or the link fails.
    ///
    /// - Throws: only if nothing was sent; then the reply is untouched.
    func sendRemote(
        _ envelope: Envelope, to id: ActorID, kind: any AnyKindRuntime, owner: NodeID, address: PeerAddress
    ) throws(DNAError) {
        guard let transport else { throw DNAError(.ownedElsewhere, "\(id) is active on node \(owner)") }
        guard Int(envelope.hops) < configuration.maxHops else {
            throw DNAError(
                .routingFailed,
                "\(id): gave up after \(envelope.hops) forwards without reaching its owner (maxHops \(configuration.maxHops))")
        }
        guard let handler = kind.handler(for: envelope.requestType) else {
            throw DNAError(.unhandledRequest, "actor kind '\(kind.name)' has no handler for this request")
        }
        let payload = try handler.codec.encodeRequest(envelope.message)
        var traceContext = ""
        if let trace = envelope.trace, let tracer {
            if envelope.hops > 0 {
                // Forwarded on behalf of another node: a span of its own, which the next node continues.
                let span = tracer.startSpan("dna.forward \(id.kind)", context: trace.context, ofKind: .producer)
                span.attributes["dna.actor"] = id.description
                span.attributes["dna.owner"] = owner.rawValue
                traceContext = TraceCarrier.encode(span.context, with: tracer)
                span.end()
            } else {
                traceContext = TraceCarrier.encode(trace.context, with: tracer)
            }
        }
        var requestID: UInt64 = 0
        if let reply = envelope.reply {
            requestID = calls.makeRequestID()
            let call = PendingCall(reply: reply, decode: handler.codec.decodeResponse, peer: address, owner: owner, actor: id)
            calls.pending.withLock { $0[requestID] = call }
        }
        do throws(TransportError) {
            try transport.send(
                WireRequest(
                    id: requestID, expectsReply: envelope.reply != nil, hops: envelope.hops, namespace: id.namespace,
                    kind: id.kind, key: id.key, requestName: handler.requestName, payload: payload,
                    origin: envelope.origin == 0 ? "" : origins.name(of: envelope.origin), sequence: envelope.sequence,
                    traceContext: traceContext),
                to: address,
                queued: { attempt in
                    // Under the link's lock: before any failure of this attempt can be reported.
                    if requestID != 0 { calls.pending.withLock { $0[requestID]?.attempt = attempt } }
                })
        } catch {
            // Nothing was queued: the reply goes back to the caller untouched, with the error.
            if requestID != 0 { calls.pending.withLock { _ = $0.removeValue(forKey: requestID) } }
            let code: DNAError.Code = error.code == .overloaded ? .overloaded : .nodeUnreachable
            throw DNAError(code, "\(id): \(error.message)", underlying: error)
        }
    }

    /// A request from another node: decoded only if its kind and request type are registered
    /// here, then delivered like a local send (which may forward it again).
    func receive(_ request: WireRequest, sink: ResponseSink) {
        func refuse(_ error: DNAError) {
            if request.expectsReply {
                sink.send(WireResponse(id: request.id, result: .failure(WireError(error))))
            } else {
                metrics.castsDroppedRefused.increment()
                logger.warning(
                    "dropped a cast from another node", metadata: ["peer": "\(sink.peerNodeID)", "error": "\(error)"])
            }
        }
        let route: ReceivedRoute
        if let last = lastReceivedRoute.withLock({ $0 }), last.matches(request) {
            route = last
        } else {
            guard let kind = kinds[request.kind] else {
                return refuse(DNAError(.unknownActorKind, "no actor kind '\(request.kind)' on node \(id)"))
            }
            let actor = ActorID(namespace: request.namespace, kind: request.kind, key: request.key)
            do { try actor.validate() } catch { return refuse(DNAError(.invalidName, error.message, underlying: error)) }
            guard let (requestType, handler) = kind.handler(named: request.requestName) else {
                return refuse(DNAError(.unhandledRequest, "actor kind '\(request.kind)' has no handler for \(request.requestName)"))
            }
            route = ReceivedRoute(
                actor: actor, requestName: request.requestName, kind: kind, requestType: requestType, codec: handler.codec)
            lastReceivedRoute.withLock { $0 = route }
        }
        // Decoded here, on the network thread, in parallel with the activation (the serial
        // stage); a payload that does not decode is refused before it reaches the mailbox.
        let message: any AnyObject & Sendable
        do { message = try route.codec.decodeRequest(request.payload) } catch { return refuse(error) }
        let reply: Reply? =
            request.expectsReply
            ? .remote(RemoteReply(sink: sink, requestID: request.id, encode: route.codec.encodeResponse)) : nil
        // The sender thinks this node hosts the actor. If this node thinks the sender does,
        // one of them is behind (the actor moved): a local activation asks the store.
        let hasLeft = lifeSnapshot.hasLeft
        if hasLeft { receivedAfterLeaving.add(1, ordering: .relaxed) }
        let sender = NodeID(rawValue: sink.peerNodeID)
        // (A node that left claims nothing: it forwards where it thinks the actor is, and
        // that node, contradicted in turn, asks the store.)
        // A wake comes from the node that just handed the name to this one: this node holds
        // it now, whatever it last heard of it (a stale entry here would send the actor's
        // messages round a cycle of stale entries until their hops ran out).
        let handedHere = request.hops == 0 && request.requestName == ActivationWake.requestName
        let cached = locations.owner(of: route.actor)
        let contradicted = (cached == sender || handedHere) && !hasLeft
        if contradicted, let cached { locations.forget(route.actor, ifAt: cached) }
        // A client's only route to the actors is its connection to this node, so this node
        // takes its requests as its own (numbered as it queues them, like a local send):
        // clients are no origins, and no activation keeps or stores a number per client.
        let fromClient = request.origin.isEmpty && ClusterClient.isClient(sink.peerNodeID)
        var envelope = Envelope(
            requestType: route.requestType, message: message, reply: reply, hops: request.hops &+ 1,
            origin: fromClient ? 0 : origins.number(of: request.origin.isEmpty ? sink.peerNodeID : request.origin),
            sequence: fromClient ? 0 : request.sequence)
        if !request.traceContext.isEmpty, let tracer {
            if let context = TraceCarrier.decode(request.traceContext, with: tracer) {
                envelope.trace = MessageTrace(context)
            } else {
                // Handled all the same, without the caller's trace.
                logger.warning(
                    "ignored a malformed trace context in a request", metadata: ["peer": "\(sink.peerNodeID)", "actor": "\(route.actor)"])
            }
        }
        guard fromClient else {
            do { try deliver(envelope, to: route.actor, kind: route.kind, claimHere: contradicted, from: sender) } catch { refuse(error) }
            return
        }
        // Only a request that comes in on an older connection after a later one came in on a
        // newer one would be out of order: it is refused (its caller was already told the
        // connection broke). One taken is queued, and numbered, before a later one is taken.
        let taken = clientOrder.admit(sink.peerNodeID, sequence: request.sequence, connection: sink) {
            do throws(DNAError) { try deliver(envelope, to: route.actor, kind: route.kind, claimHere: contradicted) } catch {
                refuse(error)
            }
        }
        if !taken {
            refuse(
                DNAError(
                    .outOfOrder,
                    "\(route.actor): a later request of the same client arrived first, on a newer connection; this one was not handled"))
        }
    }

    /// The answer to a call this node sent.
    func receive(_ response: WireResponse, from peer: PeerAddress) {
        guard let call = calls.pending.withLock({ $0.removeValue(forKey: response.id) }) else { return }
        switch response.result {
        case .success(let bytes):
            switch call.reply {
            case .local(let waiter):
                do { waiter.resume(with: .success(try call.decode(bytes))) } catch { waiter.resume(with: .failure(error)) }
            case .remote(let upstream):
                upstream.sendEncoded(.success(bytes))
            }
        case .failure(let wire):
            // The owner did not serve the call itself: next time, look the name up afresh.
            let routingCodes: Set<DNAError.Code> = [
                .fenced, .nodeUnreachable, .ownedElsewhere, .nodeStopped, .activationFailed, .routingFailed,
            ]
            if routingCodes.contains(DNAError.Code(wire.code)) { forgetLocation(of: call.actor, ifAt: call.owner) }
            switch call.reply {
            case .local(let waiter): waiter.resume(with: .failure(DNAError(wire)))
            case .remote(let upstream): upstream.sendEncoded(.failure(wire))
            }
        }
    }

    /// A connection attempt to `peer` failed: the calls it carried get a retryable error
    /// (not those sent on a later attempt, however late this report comes), its lost casts
    /// are counted, and actors believed to be there will be looked up afresh.
    func linkFailed(_ report: LinkFailure) {
        let (peer, error) = (report.peer, report.error)
        metrics.linkFailures.increment()
        let failed = calls.pending.withLock { pending in
            let ids = pending.compactMap { $0.value.peer == peer && $0.value.attempt == report.attempt ? $0.key : nil }
            return ids.compactMap { pending.removeValue(forKey: $0) }
        }
        if report.droppedCasts > 0 {
            metrics.castsDroppedLinkFailed.increment(by: report.droppedCasts)
            logger.warning(
                "casts lost with a failed link", metadata: ["peer": "\(peer)", "casts": "\(report.droppedCasts)", "error": "\(error)"])
        }
        let owners = Set(membership.nodes(at: peer)).union(failed.map(\.owner))
        locations.forget(owners: owners)
        if !failed.isEmpty {
            // The transport logs the failure itself, once; this repeats while it backs off.
            logger.debug(
                "link to a node failed; failing its calls", metadata: ["peer": "\(peer)", "calls": "\(failed.count)", "error": "\(error)"])
        }
        let failure = DNAError(.nodeUnreachable, "node at \(peer) could not be reached: \(error.message)", underlying: error)
        for call in failed { call.reply.resume(throwing: failure) }
    }

    func failAllPendingCalls(_ error: DNAError) {
        let calls = calls.pending.withLock { pending in
            defer { pending = [:] }
            return Array(pending.values)
        }
        for call in calls { call.reply.resume(throwing: error) }
    }

    private func forgetLocation(of actor: ActorID, ifAt owner: NodeID) {
        locations.forget(actor, ifAt: owner)
    }

    /// What a claim may take over (``ActivationRequest/silentNodes``): the nodes this one
    /// watched silent. `nil` without a transport: such a node reads no membership, and it
    /// runs alone or evicted every other node when it joined.
    func silentNodes() -> [NodeID: Int64]? {
        guard transport != nil else { return nil }
        let now = clock.now
        return machine.withLock { $0.silence.silentNodes(at: now) }
    }

    /// For an owner that looks dead but this node has not yet watched silent for its failure
    /// timeout: when it will have (a claim made then takes the name over, unless the owner
    /// made a heartbeat since). It looks dead if the store's last view says so, or if its
    /// mark has not changed for half its failure timeout (a live node makes at least two
    /// heartbeats per failure timeout; the store may count it dead before this node's next
    /// membership read). `nil` for any other owner.
    func silenceWatchEnds(for owner: NodeID) -> DNAInstant? {
        guard transport != nil, let watch = machine.withLock({ $0.silence.watch(of: owner) }) else { return nil }
        let now = clock.now
        let ends = watch.unchangedSince + watch.failureTimeout
        guard ends > now, membership.isDead(owner) || now - watch.unchangedSince >= watch.failureTimeout / 2 else { return nil }
        return ends
    }

    /// Reads the cluster's nodes from the store and connects to live ones not connected
    /// yet (so a first call does not wait for a connection). Calls waiting on a node the
    /// store now counts as dead fail with a retryable error (a paused node would otherwise
    /// hold them until it resumes), and actors believed to be there are looked up afresh.
    package func refreshMembers() async throws(StoreError) {
        let records = try await store.nodes(cluster: configuration.clusterName)
        // Read after the store answered: the marks were written before now.
        let now = clock.now
        let read = update { $0.membersRead(records, at: now) }
        for event in read.events { eventHub.emit(event) }
        if read.drain {
            // Asked through the store (`dna drain`): drain, then leave, as a graceful shutdown.
            logger.info("asked to drain", metadata: ["node": "\(id)"])
            stopRequested.signal()
        }
        var dropped: Set<PeerAddress> = []
        if let transport {
            let live = Set(membership.liveAddresses(except: id))
            for address in live { transport.connect(to: address) }
            // Links to nodes that are gone, where no live node listens now, are dropped.
            for peer in transport.linkedPeers where !live.contains(peer) && !membership.isLive(at: peer) && !membership.isLeaving(at: peer)
            {
                transport.disconnect(from: peer)
                dropped.insert(peer)
            }
        }
        // Calls waiting on a node the store counts as silent fail, whenever they were sent: a
        // call sent to a node already dead in this view (the store still named it the owner)
        // would otherwise wait for ever, its link dropped above. Calls to a node that left on
        // purpose are still answered: it forwards for a moment after leaving (and a node that
        // stops closes its connections, which fails them).
        let silent = read.silent
        // So do calls sent on a link just dropped (to a node that left, say): the transport
        // reports nothing for a link it was told to drop, and their answers cannot come.
        var failed: [PendingCall] = []
        if !silent.isEmpty || !dropped.isEmpty {
            failed = calls.pending.withLock { pending in
                let ids = pending.compactMap { silent.contains($0.value.owner) || dropped.contains($0.value.peer) ? $0.key : nil }
                return ids.compactMap { pending.removeValue(forKey: $0) }
            }
        }
        if !read.died.isEmpty { locations.forget(owners: read.died) }
        for call in failed {
            let reason = silent.contains(call.owner) ? "stopped heartbeating" : "is gone, and its link was dropped"
            call.reply.resume(throwing: DNAError(.nodeUnreachable, "node \(call.owner) \(reason); \(call.actor) will move"))
        }
    }

    /// The address of `node`, reading the membership again if it is not known yet.
    func address(of node: NodeID) async -> PeerAddress? {
        if let address = membership.address(of: node) { return address }
        guard transport != nil else { return nil }
        try? await refreshMembers()
        return membership.address(of: node)
    }

    /// An activation found that `owner` holds its name: it leaves the directory, and its
    /// queued messages go to the owner, in order, before any later send can (the location
    /// is recorded under the same lock).
    ///
    /// - Returns: `false` if the owner cannot be reached from here (no transport, or its
    ///   address unknown); then nothing was done.
    func relocate(
        _ activation: any AnyActivation, kind: any AnyKindRuntime, to owner: NodeID, takingQueue: () -> [Envelope]
    ) async -> Bool {
        guard transport != nil, let address = await address(of: owner) else { return false }
        directory.withLock { directory in
            let queued = takingQueue()
            if let current = directory.activations[activation.id], current === activation {
                directory.activations[activation.id] = nil
            }
            locations.record(owner, for: activation.id)
            for envelope in queued {
                do { try sendRemote(envelope, to: activation.id, kind: kind, owner: owner, address: address) } catch {
                    failOrCount(envelope, to: activation.id, error)
                }
            }
        }
        logger.debug("actor is active elsewhere; forwarding", metadata: ["actor": "\(activation.id)", "owner": "\(owner)"])
        return true
    }
}

extension Node {
    /// Moves the activation of `id`, active on this node, to the node `target`: it stops
    /// taking the actor's messages (they queue), lets what it handled commit, hands the
    /// name to the target in the store at a new epoch (fencing this activation), and
    /// forwards what queued meanwhile to the target, in order; the target's activation
    /// loads the actor from the store on its first message. Calls under way are answered
    /// here or there. Returns once the name is the target's.
    ///
    /// - Throws: ``DNAError/Code/notMovable`` for a type that opted out;
    ///   ``DNAError/Code/invalidArgument`` when the actor is not active on this node, the
    ///   target is this node, unknown, dead, draining or not yet serving, or the node places
    ///   actors by consistent hash (they live where the hash puts them);
    ///   ``DNAError/Code/commitFailed`` (retryable) when the store could not hand the name
    ///   over, ``DNAError/Code/outcomeUnknown`` when its answer was lost, and
    ///   ``DNAError/Code/fenced`` when this node no longer held the name. In every case the
    ///   activation here has stopped: the actor's next message activates it wherever the
    ///   store has the name (here again, at a new epoch, if it did not move). Nothing
    ///   queued is lost.
    public func migrate(_ id: ActorID, to target: NodeID) async throws(DNAError) {
        guard let kind = kinds[id.kind] else { throw DNAError(.unknownActorKind, "no actor kind '\(id.kind)' on this node") }
        guard kind.isMovable else { throw DNAError(.notMovable, "actors of kind '\(id.kind)' are not movable (isMovable is false)") }
        guard transport != nil else { throw DNAError(.invalidArgument, "a node without a cluster transport has nowhere to move actors") }
        guard kind.placement.allowsMoves else {
            throw DNAError(.invalidArgument, "actors placed by consistent hash live on the node the hash picks; they are not moved")
        }
        if case .pinned(let label) = kind.placement, !membership.labels(of: target).contains(label) {
            throw DNAError(.invalidArgument, "actors of kind '\(id.kind)' run only on nodes labelled '\(label)'; node \(target) is not")
        }
        guard target != self.id else { throw DNAError(.invalidArgument, "\(id) is on this node already") }
        if !membership.servesNewActors(target) { try? await refreshMembers() }
        guard membership.servesNewActors(target), membership.address(of: target) != nil else {
            throw DNAError(
                .invalidArgument,
                "node \(target) cannot take \(id): \(membership.describe(target) ?? "it is not a member of cluster \(configuration.clusterName)")"
            )
        }
        guard let activation = directory.withLock({ $0.activations[id] }) else {
            throw DNAError(.invalidArgument, "\(id) is not active on this node")
        }
        try await activation.migrate(to: target)
    }

    /// Delivers `envelope` again after the activation it queued in left: it goes wherever
    /// the name is now; a failure goes to its caller.
    func redeliver(_ envelope: Envelope, to id: ActorID, kind: any AnyKindRuntime) {
        do { try deliver(envelope, to: id, kind: kind) } catch { failOrCount(envelope, to: id, error) }
    }

    /// A message that cannot go on: a call's caller gets `error`; a cast, whose sender
    /// cannot be told, is counted (`dna_casts_dropped_total{reason="undeliverable"}`, or
    /// `activation_failed`) and logged.
    func failOrCount(_ envelope: Envelope, to id: ActorID, _ error: any Error, activationFailed: Bool = false) {
        if let reply = envelope.reply {
            reply.resume(throwing: error)
            return
        }
        (activationFailed ? metrics.castsDroppedActivationFailed : metrics.castsDroppedUndeliverable).increment()
        logger.warning(
            activationFailed ? "cast dropped: its actor could not be activated" : "cast dropped: it could not be delivered",
            metadata: ["actor": "\(id)", "error": "\(error)"])
    }
}

/// What the last request from another node resolved to: its actor (name checked), kind and
/// handler. Requests mostly come in streams to one actor, and their names then share
/// storage with the previous request's (the transport reuses them), so checking that a
/// request matches costs far less than looking it up and validating it again.
final class ReceivedRoute: Sendable {
    let actor: ActorID
    let requestName: String
    let kind: any AnyKindRuntime
    let requestType: ObjectIdentifier
    let codec: RemoteCodec

    init(actor: ActorID, requestName: String, kind: any AnyKindRuntime, requestType: ObjectIdentifier, codec: RemoteCodec) {
        self.actor = actor
        self.requestName = requestName
        self.kind = kind
        self.requestType = requestType
        self.codec = codec
    }

    /// Byte for byte: `==` would let a name that is canonically equivalent to the
    /// remembered one, but not valid itself, past the checks.
    func matches(_ request: WireRequest) -> Bool {
        request.key.hasSameUTF8(as: actor.key) && request.requestName.hasSameUTF8(as: requestName)
            && request.kind.hasSameUTF8(as: actor.kind) && request.namespace.hasSameUTF8(as: actor.namespace)
    }
}

/// The nodes requests come from, numbered for this node's activations (which keep, per
/// origin, the latest request they handled). 0 is this node. Only nodes are origins (a
/// client's requests are taken as the node's own, see ``ClientOrder``): the table holds
/// this node and each incarnation of another node that sent it requests.
package final class OriginTable: Sendable {
    private struct State {
        var numbers: [String: UInt32]
        var names: [String]
        var bytes: [[UInt8]] = []
        /// The last origin looked up: requests come in streams from one peer.
        var last: (name: String, number: UInt32)?
    }

    private let state: Mutex<State>

    package init(this: String) {
        state = Mutex(State(numbers: [this: 0], names: [this]))
    }

    package func number(of name: String) -> UInt32 {
        state.withLock { state in
            if let last = state.last, last.name.hasSameUTF8(as: name) { return last.number }
            let number: UInt32
            if let known = state.numbers[name] {
                number = known
            } else {
                number = UInt32(state.names.count)
                state.numbers[name] = number
                state.names.append(name)
            }
            state.last = (name, number)
            return number
        }
    }

    /// How many origins are numbered, this node included.
    package var count: Int { state.withLock { $0.names.count } }

    package func name(of number: UInt32) -> String {
        state.withLock { Int(number) < $0.names.count ? $0.names[Int(number)] : "" }
    }

    /// ``name(of:)`` as UTF-8 bytes, made once per origin.
    package func nameBytes(of number: UInt32) -> [UInt8] {
        state.withLock { state in
            guard Int(number) < state.names.count else { return [] }
            while state.bytes.count < state.names.count { state.bytes.append(Array(state.names[state.bytes.count].utf8)) }
            return state.bytes[Int(number)]
        }
    }
}

/// The requests of the ``ClusterClient``s connected to this node, which the node takes as
/// its own. A client numbers its requests as its connection queues them, from one counter
/// across its reconnections; on one connection they arrive in that order. A request still
/// on its way in on a broken connection could arrive after later ones came in on a newer
/// connection: this table keeps, per client, the latest number taken, and refuses an
/// earlier one.
///
/// Bounded by the clients connected: a client is forgotten once every connection its
/// requests came in on is gone (each is held weakly; the transport lets go of a closed
/// one). Nothing of it can arrive after that: a request is read from an open connection,
/// and the client's later connections carry only later numbers.
final class ClientOrder: Sendable {
    private struct Connection {
        weak var object: (any AnyObject & Sendable)?
    }

    private struct Client {
        var latest: UInt64
        var connections: [Connection]

        var isGone: Bool { connections.allSatisfy { $0.object == nil } }
    }

    private struct State {
        var clients: [String: Client] = [:]
        /// The table is swept of gone clients when it reaches this size.
        var sweepAt = ClientOrder.firstSweep
    }

    private static let firstSweep = 64
    private let state = Mutex(State())

    /// Whether the request `sequence` of `client`, come in on `connection`, is later than
    /// every one of the client's taken so far; if so it is taken and `deliver` queues it
    /// before any other client's request is taken (two connections of a client are read on
    /// two threads: a request taken first must also be numbered first). 0 (not numbered)
    /// is always taken.
    func admit(_ client: String, sequence: UInt64, connection: any AnyObject & Sendable, then deliver: () -> Void) -> Bool {
        state.withLock { state in
            let taken = Self.take(&state, client, sequence: sequence, connection: connection)
            if taken { deliver() }
            return taken
        }
    }

    private static func take(_ state: inout State, _ client: String, sequence: UInt64, connection: any AnyObject & Sendable) -> Bool {
        guard sequence != 0 else { return true }
        if let index = state.clients.index(forKey: client) {
            guard sequence > state.clients.values[index].latest else { return false }
            state.clients.values[index].latest = sequence
            if !state.clients.values[index].connections.contains(where: { $0.object === connection }) {
                state.clients.values[index].connections.removeAll { $0.object == nil }
                state.clients.values[index].connections.append(Connection(object: connection))
            }
            return true
        }
        state.clients[client] = Client(latest: sequence, connections: [Connection(object: connection)])
        if state.clients.count >= state.sweepAt {
            state.clients = state.clients.filter { !$0.value.isGone }
            state.sweepAt = max(Self.firstSweep, state.clients.count * 2)
        }
        return true
    }

    /// The clients remembered that still have a connection (the others are forgotten now).
    var count: Int {
        state.withLock { state in
            state.clients = state.clients.filter { !$0.value.isGone }
            return state.clients.count
        }
    }
}
