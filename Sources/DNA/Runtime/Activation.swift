import DNATransport
import DequeModule
import Logging
import Synchronization
import Tracing
import Metrics
import CoreMetrics

/// The node's view of an activation, whatever its actor type.
protocol AnyActivation: AnyObject, Sendable {
    var id: ActorID { get }
    func enqueue(_ envelope: Envelope) -> EnqueueResult
    /// Marks the activation stopped if it is idle (no task, empty mailbox, no timers) since
    /// before `cutoff`. Called with the node's directory locked.
    func stopIfIdle(since cutoff: DNAInstant?) -> Bool
    /// After ``stopIfIdle(since:)`` said yes: gives the name back and frees the instance.
    func finishStop() async
    /// Waits until the activation has no task running (its mailbox handled and committed).
    func waitUntilIdle() async
    /// Moves the activation to `target` (see ``Node/migrate(_:to:)``).
    func migrate(to target: NodeID) async throws(DNAError)
}

enum EnqueueResult {
    case accepted
    case stopped
    case full
}

/// The life of one actor instance on this node. Its decisions (mailbox, batches, output
/// gate, commit pipeline, lease check) are made by an ``ActivationStateMachine`` behind a
/// lock; this class carries them out: it runs the task that handles batches, calls the
/// actor's handlers, talks to the store and releases replies.
///
/// Ownership: the machine is behind its lock; `instance` and `context` belong to the one
/// task, which the machine guarantees never runs twice at once.
final class Activation<A: DurableActor>: AnyActivation, @unchecked Sendable {
    typealias Machine = ActivationStateMachine<Envelope, HeldReply, UnsafeContinuation<Void, Never>>

    let id: ActorID
    private let kind: KindRuntime<A>
    private unowned let node: Node
    private let machine: Mutex<Machine>
    private let timers: TimerSet
    /// The node's (read here, not through `node`, on every message).
    private let sequencer: RequestSequencer

    // Owned by the task.
    private var instance: A?
    private var context: ActorContext?
    /// Set by ``stopIfIdle(since:)``: the name ``finishStop()`` gives back, and why.
    private var stoppedRegistration: Registration?
    private var stopReason = DeactivationReason.idle

    init(id: ActorID, kind: KindRuntime<A>, node: Node) {
        self.id = id
        self.kind = kind
        self.node = node
        let configuration = node.configuration
        let limits = Machine.Limits(
            mailboxCapacity: configuration.mailboxCapacity, maxBatch: configuration.maxBatch,
            pipelineDepth: configuration.commitPipelineDepth, commitTimeout: configuration.commitTimeout, reportsCommits: true,
            storesNewOrigins: node.transport != nil)
        machine = Mutex(Machine(id: id, limits: limits, now: node.clock.now))
        sequencer = node.sequencer
        timers = TimerSet(clock: node.clock)
    }

    // MARK: Mailbox

    func enqueue(_ envelope: Envelope) -> EnqueueResult {
        let sequencer = self.sequencer
        let outcome = machine.withLock { machine in
            var envelope = envelope
            // Numbered under the mailbox's lock, so in the order it is queued.
            if envelope.sequence == 0 { envelope.sequence = sequencer.next() }
            return machine.enqueue(envelope)
        }
        switch outcome {
        case .accepted(let parked):
            parked?.resume()
            return .accepted
        case .acceptedStartTask:
            startTask()
            return .accepted
        case .full:
            return .full
        case .stopped:
            return .stopped
        }
    }

    func stopIfIdle(since cutoff: DNAInstant?) -> Bool {
        let hasTimers = !timers.isEmpty
        switch machine.withLock({ $0.stopIfIdle(since: cutoff, hasTimers: hasTimers) }) {
        case .notIdle:
            return false
        case .storeOrderFirst:
            startTask()
            return false
        case .stopped(let registration):
            stoppedRegistration = registration
        }
        stopReason = cutoff == nil ? .shutdown : .idle
        return true
    }

    func finishStop() async {
        let registration = stoppedRegistration
        stoppedRegistration = nil
        await dropInstance(stopReason)
        await release(registration)
        node.metrics.passivations.increment()
    }

    func waitUntilIdle() async {
        await withUnsafeContinuation { continuation in
            if !machine.withLock({ $0.waitUntilIdle(continuation) }) { continuation.resume() }
        }
    }

    /// Drops the actor instance (after its ``DurableActor/willDeactivate(reason:context:)``),
    /// its context and its timers. The next message activates the actor afresh from the store.
    private func dropInstance(_ reason: DeactivationReason) async {
        timers.cancelAll()
        if let instance, let context {
            await instance.willDeactivate(reason: reason, context: context)
            // Nothing commits after this: writes made here are dropped.
            context.log.rollbackMessage()
            node.eventHub.emit(.actorDeactivated(id, reason: reason))
        }
        instance = nil
        context = nil
    }

    /// Gives the name back, so any node may claim it at once.
    private func release(_ registration: Registration?) async {
        guard let registration else { return }
        do { try await node.store.release(registration) } catch {
            // The name stays ours until the failure timeout; nothing is lost.
            node.logger.debug("could not release name", metadata: ["actor": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: The task

    private func run() async {
        while true {
            let now = node.clock.now
            let lease = node.leaseSnapshot
            let (step, waiting) = machine.withLock { ($0.nextStep(now: now, lease: lease), $0.waitingCount) }
            switch step {
            case .handle(let batch, let refused):
                node.metrics.mailboxDepth.record(waiting)
                if !refused.isEmpty { refuseOutOfOrder(refused) }
                await handle(batch)
            case .activate:
                await activate()
            case .commit(let batch):
                submit(batch)
            case .wait(let until):
                await park(until: until)
            case .reset(let failures, let registration):
                node.logger.error(
                    "commit failed for good; the actor goes back to its last durable state",
                    metadata: ["actor": "\(id)", "error": "\(failures.first.map { "\($0.error)" } ?? "")"])
                fail(failures)
                await dropInstance(.lost)
                await release(registration)
            case .stop(let failures, let queued, let refused, let error, let waiters):
                node.logger.warning("activation stops", metadata: ["actor": "\(id)", "error": "\(error)"])
                node.removeFromDirectory(self)
                if !refused.isEmpty { refuseOutOfOrder(refused) }
                // Never handled here, and the name may be another node's by now: they go
                // wherever it is (what cannot go on fails or is counted) before anything
                // else is awaited, so that later messages rarely overtake them (one that
                // does gets them refused as out of order, never handled out of order).
                for envelope in queued { node.redeliver(envelope, to: id, kind: kind) }
                if error.code == .fenced { node.eventHub.emit(.actorFenced(id)) }
                await dropInstance(.lost)
                fail(failures)
                for waiter in waiters { waiter.resume() }
            case .deactivate(let registration):
                await dropInstance(.requested)
                await release(registration)
                node.metrics.passivations.increment()
            case .migrate(let registration, let target, let reply):
                await handOver(registration, to: target, reply: reply)
            case .storeOrder:
                let now = node.clock.now
                let origins = node.origins
                let batch = machine.withLock { machine in
                    machine.takeOrderState().flatMap { machine.commitOrder(OrderState.encode($0, origins: origins), now: now) }
                }
                if let batch { submit(batch) }
            case .didCommit(let messages):
                if let instance, let context {
                    await instance.didCommit(messages: messages, context: context)
                    // Nothing commits these: writes made here are dropped.
                    context.log.rollbackMessage()
                }
            case .exit(let waiters):
                for waiter in waiters { waiter.resume() }
                abandonMigration()
                return
            }
            abandonMigration()
        }
    }

    // MARK: Migration

    /// Moves the activation to `target` (see ``Node/migrate(_:to:)``): returns once the
    /// name is the target's and what was queued here is on its way there.
    func migrate(to target: NodeID) async throws(DNAError) {
        let result = await withUnsafeContinuation { (continuation: UnsafeContinuation<Result<Void, DNAError>, Never>) in
            let reply = MigrationReply { continuation.resume(returning: $0) }
            switch machine.withLock({ $0.requestMigration(to: target, reply: reply) }) {
            case .accepted(let parked):
                parked?.resume()
            case .acceptedStartTask:
                startTask()
            case .refused(let reason):
                reply.resume(.failure(DNAError(.invalidArgument, reason)))
            }
        }
        try result.get()
    }

    /// Everything handled is durable and no batch runs: the store hands the name to
    /// `target` (fencing this activation's epoch), then the queue follows it there.
    ///
    /// Whatever the store answers, this activation serves no more: after a lost answer the
    /// name may be the target's already. Its queue then goes wherever the name is (here
    /// again, at a new epoch, if the hand-over did not happen).
    private func handOver(_ registration: Registration, to target: NodeID, reply: MigrationReply) async {
        let transientState: [UInt8]?
        do {
            transientState = try encodedStateToHandOver()
        } catch {
            node.logger.error("actor not moved", metadata: ["actor": "\(id)", "target": "\(target)", "error": "\(error)"])
            await follow(nil, reason: .lost)
            reply.resume(.failure(error))
            return
        }
        do {
            try await node.store.handOver(registration, to: target, transientState: transientState)
        } catch {
            let outcome: DNAError =
                switch error.code {
                case .fenced: DNAError(.fenced, "\(id) was no longer held here; it was not moved", underlying: error)
                case .outcomeUnknown:
                    DNAError(.outcomeUnknown, "\(id): the store's answer to the hand-over to \(target) was lost", underlying: error)
                default: DNAError(.commitFailed, "\(id) could not be handed over to \(target)", underlying: error)
                }
            node.logger.warning("actor not moved", metadata: ["actor": "\(id)", "target": "\(target)", "error": "\(error)"])
            await follow(nil, reason: .lost)
            reply.resume(.failure(outcome))
            return
        }
        node.metrics.migrations.increment()
        node.eventHub.emit(.actorMigrated(id, from: node.id, to: target, fromEpoch: registration.epoch, toEpoch: registration.epoch + 1))
        await follow(target, reason: .migrated)
        // Activated there now, not on its next message.
        try? node.cast(ActivationWake(), to: id)
        reply.resume(.success(()))
    }

    /// The actor's ``DurableActor/stateToHandOver()``, encoded and checked.
    private func encodedStateToHandOver() throws(DNAError) -> [UInt8]? {
        guard let state = instance?.stateToHandOver() else { return nil }
        let bytes: [UInt8]
        do { bytes = try CompactEncoder.encode(state) } catch {
            throw DNAError(.invalidArgument, "\(id): its state to hand over could not be encoded; it was not moved: \(error)")
        }
        guard bytes.count <= ActorContext.maxHandedOverStateSize else {
            throw DNAError(
                .invalidArgument,
                "\(id): its state to hand over is \(bytes.count) bytes encoded, more than \(ActorContext.maxHandedOverStateSize); it was not moved"
            )
        }
        return bytes
    }

    /// After a hand-over: the instance goes, and the queue follows the name to `owner`
    /// (`nil`: to wherever the node finds it).
    private func follow(_ owner: NodeID?, reason: DeactivationReason) async {
        await dropInstance(reason)
        if let owner, await node.relocate(self, kind: kind, to: owner, takingQueue: { takeQueueAfterMove() }) { return }
        // The owner is not known here: deliver the queue afresh (it finds the name's owner).
        node.removeFromDirectory(self)
        for envelope in takeQueueAfterMove() { node.redeliver(envelope, to: id, kind: kind) }
    }

    private func takeQueueAfterMove() -> [Envelope] {
        let (queued, waiters) = machine.withLock { $0.migrated() }
        for waiter in waiters { waiter.resume() }
        return queued
    }

    /// A move asked for that can no longer happen (the activation stopped or reset first).
    private func abandonMigration() {
        guard let reply = machine.withLock({ $0.takeAbandonedMigration() }) else { return }
        reply.resume(.failure(DNAError(.fenced, "\(id) stopped here before it could be moved")))
    }

    /// Messages overtaken by a later one of their origin: not handled.
    private func refuseOutOfOrder(_ refused: [Envelope]) {
        let error = DNAError(
            .outOfOrder, "\(id): a later request from the same node arrived first (the route changed); this one was not handled")
        let casts = refused.filter { $0.reply == nil }.count
        if casts > 0 {
            node.metrics.castsDroppedOutOfOrder.increment(by: casts)
            node.logger.warning(
                "casts dropped: overtaken by later ones from the same node on another route",
                metadata: ["actor": "\(id)", "casts": "\(casts)"])
        }
        for envelope in refused { envelope.reply?.resume(throwing: error) }
    }

    private func fail(_ failures: [Machine.Failure]) {
        // Counted before the callers are told: whoever learns of the failure sees the count.
        let lost = failures.reduce(0) { $0 + ($1.error.code != .outcomeUnknown ? $1.casts : 0) }
        if lost > 0 {
            node.metrics.castsDroppedNotCommitted.increment(by: lost)
            node.logger.warning("casts lost: their batch was not committed", metadata: ["actor": "\(id)", "casts": "\(lost)"])
        }
        for failure in failures {
            for reply in failure.held { reply.reply.resume(throwing: failure.error) }
        }
    }

    /// Starts the activation's task. The task holds the node strongly while it runs (the
    /// activation holds it unowned): after a start that failed, what the task does once its
    /// last caller was told (a stop's bookkeeping) may run after the node's owner let go.
    private func startTask() {
        let node: Node = self.node
        node.spawn {
            await self.run()
            withExtendedLifetime(node) {}
        }
    }

    /// Waits until the machine has something to do, or until `deadline` (a retry).
    private func park(until deadline: DNAInstant?) async {
        let clock = node.clock
        if let deadline {
            if deadline <= clock.now { return }
            // Only while a commit waits to be retried: not on the path of every batch.
            node.spawn { [weak self] in
                try? await clock.sleep(until: deadline)
                self?.machine.withLock { $0.wake() }?.resume()
            }
        }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            if !machine.withLock({ $0.park(continuation, now: clock.now) }) { continuation.resume() }
        }
    }

    private func submit(_ batch: CommitBatch, span: (any Span)? = nil) {
        node.metrics.batches.increment()
        let submitted = node.clock.now
        node.store.commit(batch) { [self] result in
            node.metrics.commitDuration.record(duration: node.clock.now - submitted)
            if let span {
                if case .failure(let error) = result { span.recordError(error) }
                span.end()
            }
            let action = machine.withLock { $0.commitCompleted(sequence: batch.sequence, result: result, now: node.clock.now) }
            if case .success = result, !batch.streams.appends.isEmpty, !node.features.isEmpty {
                let streams = batch.streams.appends.map(\.stream)
                for feature in node.features { feature.appended(to: streams, on: node) }
            }
            if case .failure(let error) = result {
                node.metrics.commitFailures.increment()
                if error.code != .predecessorMissing && error.code != .fenced {
                    node.logger.warning("commit failed; retrying", metadata: ["actor": "\(id)", "error": "\(error)"])
                }
            }
            for reply in action.release { reply.release() }
            action.resume?.resume()
        }
    }

    private func handle(_ batch: [Envelope]) async {
        guard let instance, let context else { return }
        var held: [HeldReply] = []
        /// The last traced message's handler span: the parent of the batch's commit span.
        var tracedContext: InstrumentationContext?
        // Batches are mostly of one request type: look its handler up once.
        var lastType: ObjectIdentifier?
        var lastHandler: HandlerEntry?
        var casts = 0
        for envelope in batch {
            if envelope.requestType == Self.alarmFire {
                await fireAlarm(envelope, instance: instance, context: context)
                continue
            }
            if envelope.requestType != lastType {
                lastType = envelope.requestType
                lastHandler = kind.handlers.entries[envelope.requestType]
            }
            guard let handler = lastHandler else {
                // Checked when sent; kept as a guard against a handler table mismatch.
                envelope.reply?.resume(throwing: DNAError(.unhandledRequest, "\(A.kind) has no handler for this request"))
                continue
            }
            if envelope.reply == nil && !handler.isInternal { casts += 1 }
            let result: Result<any Sendable, any Error>
            let writesBefore = context.log.operations.count
            var wrote = false
            var span: (any Span)?
            if let trace = envelope.trace, let tracer = node.tracer {
                span = tracer.startSpan("dna.handle \(handler.requestName)", context: trace.context, ofKind: .server)
                span?.attributes["dna.actor"] = id.description
                span?.attributes["dna.node"] = node.id.rawValue
            }
            do {
                if let span {
                    // Calls the handler makes continue this trace.
                    result = .success(
                        try await InstrumentationContext.withValue(span.context) {
                            try await handler.invoke(instance, envelope.message, context)
                        })
                    tracedContext = span.context
                } else {
                    result = .success(try await handler.invoke(instance, envelope.message, context))
                }
                span?.end()
                wrote = context.log.operations.count != writesBefore
                context.log.endMessage()
            } catch {
                span?.recordError(error)
                span?.end()
                context.log.rollbackMessage()
                result = .failure(error)
                if envelope.reply == nil {
                    node.logger.debug(
                        "cast handler threw; its writes were discarded",
                        metadata: ["actor": "\(id)", "request": "\(handler.requestName)", "error": "\(error)"])
                }
            }
            if let reply = envelope.reply {
                if handler.timing == .immediate {
                    let now = node.clock.now
                    let lease = node.leaseSnapshot
                    if let refusal = machine.withLock({ $0.mayAnswer(now: now, lease: lease) ? nil : $0.leaseLostError(wrote: wrote) }) {
                        reply.resume(throwing: refusal)
                    } else {
                        reply.resume(with: result)
                    }
                } else {
                    held.append(HeldReply(reply: reply, result: result))
                }
            }
        }
        node.metrics.messages.increment(by: batch.count)
        node.metrics.batchMessages.record(batch.count)
        let operations = context.log.take()
        let streams = context.log.takeStreams()
        let deactivate = context.deactivationRequested
        context.deactivationRequested = false
        var order: [UInt8]?
        let writes = !operations.isEmpty || !streams.isEmpty
        // A read-only batch of a node alone stores no order: no lock taken for it.
        if writes || node.transport != nil, let state = machine.withLock({ $0.orderToStore(writes: writes) }) {
            order = OrderState.encode(state, origins: node.origins)
        }
        let action = machine.withLock { machine in
            if deactivate { machine.requestDeactivation() }
            return machine.handled(
                operations: operations, held: held, now: node.clock.now, lease: node.leaseSnapshot, order: order, messages: batch.count,
                casts: casts, streams: streams)
        }
        switch action {
        case .none: break
        case .commit(let batch):
            var span: (any Span)?
            if let tracedContext, let tracer = node.tracer {
                span = tracer.startSpan("dna.commit", context: tracedContext, ofKind: .client)
                span?.attributes["dna.actor"] = id.description
                span?.attributes["dna.writes"] = batch.operations.count
            }
            submit(batch, span: span)
        case .release(let replies): for reply in replies { reply.release() }
        case .fail(let replies, let error): for reply in replies { reply.reply.resume(throwing: error) }
        }
    }

    // MARK: Alarms

    private static var alarmFire: ObjectIdentifier { ObjectIdentifier(AlarmFire.self) }

    /// Runs the actor's alarm handler if the alarm is still the one the node found due,
    /// then removes the alarm, moves a repeating one to its next time, or — if the handler
    /// threw — moves it to its retry time; all in the current batch.
    /// After an alarm handler threw: 1 s, doubling, at most 5 minutes (``DurableActor/alarm(_:context:)``).
    static var alarmRetryBackoff: Backoff { Backoff(first: .seconds(1), maximum: .seconds(300)) }

    private func fireAlarm(_ envelope: Envelope, instance: A, context: ActorContext) async {
        let fire = unsafeDowncast(envelope.message, to: MessageBox<AlarmFire>.self).value
        envelope.reply?.resume(with: .success(()))
        let schedule = context.alarmSchedule
        // Handled already, moved or cancelled since it was found: a repeated fire.
        guard let alarm = schedule[fire.name], alarm.due == fire.due else { return }
        let now = node.clock.wallNow.milliseconds
        node.metrics.alarmLateness.record(duration: .milliseconds(max(0, now - alarm.due)))
        do {
            try await instance.alarm(fire.name, context: context)
            context.log.endMessage()
            node.metrics.alarmsFired.increment()
            // Unless the handler set it again, or cancelled it.
            if schedule[fire.name] == alarm {
                if alarm.interval > 0 {
                    // Missed times are not made up: the next time still ahead.
                    let missed = max(0, (now - alarm.due) / alarm.interval)
                    schedule.set(fire.name, AlarmRecord(due: alarm.due + (missed + 1) * alarm.interval, interval: alarm.interval))
                } else {
                    schedule.remove(fire.name)
                }
            }
        } catch {
            context.log.rollbackMessage()
            node.metrics.alarmRetries.increment()
            let attempt = alarm.attempt &+ 1
            let delay = Self.alarmRetryBackoff.delay(afterFailures: Int(attempt)).wholeNanoseconds / 1_000_000
            schedule.set(fire.name, AlarmRecord(due: now + delay, interval: alarm.interval, attempt: attempt))
            node.logger.warning(
                "alarm handler threw; retrying",
                metadata: ["actor": "\(id)", "alarm": "\(fire.name)", "attempt": "\(attempt)", "in_ms": "\(delay)", "error": "\(error)"])
        }
        context.log.endMessage()
    }

    // MARK: Activation

    /// Claims the name, loads the data, runs the initialiser; its writes are committed
    /// before the first message.
    private func activate() async {
        let started = node.clock.now
        var granted: Registration?
        let outcome: Machine.ActivationOutcome
        do {
            // Messages sent before the node runs wait for it here.
            try await node.waitUntilReady()
            var claims = 0
            var generation: UInt64
            var result: ActivationOutcome
            repeat {
                claims += 1
                if !node.holdsLease {
                    // Claim only while the node's heartbeat is fresh, or it would stop serving at once.
                    try await node.renewLease(state: node.servingState)
                    // Renewed too late to hold (the store answered after the lease's deadline):
                    // claiming now would stop at once, and messages would go round again.
                    guard node.holdsLease else {
                        throw StoreError(.unavailable, "the node's heartbeat was answered too late to give it a lease; try again")
                    }
                }
                generation = node.currentLeaseGeneration
                result = try await node.store.activate(
                    ActivationRequest(actor: id, node: node.id, silentNodes: node.silentNodes()))
                // The owner is dead by the store's clock, but this node has not watched it
                // silent for its failure timeout yet (`SilenceWatch`): it may still serve on
                // its lease. Wait for the watch (the messages wait in the mailbox) and claim
                // again, rather than forwarding to a node about to stop serving.
                guard claims == 1, case .ownedElsewhere(let owner) = result, let ends = node.silenceWatchEnds(for: owner) else { break }
                try await node.clock.sleep(until: ends)
            } while true
            switch result {
            case .granted(let registration, var rows):
                granted = registration
                let order = OrderState.take(from: &rows, origins: node.origins)
                if !order.isEmpty { machine.withLock { $0.restoreOrder(order) } }
                let handedOver = rows.lastIndex { $0.module == ModuleRow.handOverModule }.map { rows.remove(at: $0).value }
                let context = ActorContext(id: id, rows: rows, node: node, timers: timers, handedOverState: handedOver)
                if handedOver != nil {
                    // Read once: it goes with the first commit.
                    context.log.append(StorageOperation(module: ModuleRow.handOverModule, key: [], value: nil))
                    context.log.endMessage()
                }
                let instance = try await A(context: context)
                await instance.didActivate(context: context)
                for feature in kind.features { feature.activationStarted(id, on: node) }
                let operations = context.log.take()
                context.log.endMessage()
                self.instance = instance
                self.context = context
                outcome = .granted(registration, leaseGeneration: generation, operations: operations)
            case .ownedElsewhere(let owner):
                let moved = await node.relocate(self, kind: kind, to: owner) {
                    let (queued, refused, waiters) = machine.withLock { $0.stopAndTakeQueue() }
                    for waiter in waiters { waiter.resume() }
                    if !refused.isEmpty { refuseOutOfOrder(refused) }
                    return queued
                }
                if moved { return }
                outcome = .failed(DNAError(.ownedElsewhere, "\(id) is active on node \(owner), which this node cannot reach"))
            }
        } catch {
            node.logger.warning("activation failed", metadata: ["actor": "\(id)", "error": "\(error)"])
            await dropInstance(.lost)
            await release(granted)
            outcome = .failed(DNAError(.activationFailed, "\(id) could not be activated", underlying: error))
        }
        switch machine.withLock({ $0.activated(outcome, now: node.clock.now) }) {
        case .none:
            break
        case .commit(let batch):
            submit(batch)
        case .stop(let queued, let error, let waiters):
            node.removeFromDirectory(self)
            for envelope in queued { node.failOrCount(envelope, to: id, error, activationFailed: true) }
            for waiter in waiters { waiter.resume() }
            return
        }
        node.metrics.activations.increment()
        node.metrics.activationDuration.record(duration: node.clock.now - started)
        if let granted { node.eventHub.emit(.actorActivated(id, epoch: granted.epoch)) }
    }
}

/// The order state of a name (the latest request per origin node) as the store keeps it:
/// per origin, the length of its node id (1 byte), the id (UTF-8), the sequence (8 bytes,
/// big-endian).
package enum OrderState {
    package static func encode(_ state: [(origin: UInt32, sequence: UInt64)], origins: OriginTable) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(state.count * 41)
        for (origin, sequence) in state {
            let name = origins.nameBytes(of: origin).prefix(255)
            bytes.append(UInt8(name.count))
            bytes.append(contentsOf: name)
            withUnsafeBytes(of: sequence.bigEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// Removes the order-state row from `rows` (the actor's modules never see it) and
    /// decodes it; a malformed one is ignored (order is then known from now on only).
    package static func take(from rows: inout [ModuleRow], origins: OriginTable) -> [(origin: UInt32, sequence: UInt64)] {
        guard let index = rows.lastIndex(where: { $0.module == ModuleRow.orderModule }) else { return [] }
        let bytes = rows.remove(at: index).value
        var state: [(origin: UInt32, sequence: UInt64)] = []
        var position = 0
        while position < bytes.count {
            let length = Int(bytes[position])
            let end = position + 1 + length
            guard end + 8 <= bytes.count else { return state }
            let name = String(decoding: bytes[(position + 1)..<end], as: UTF8.self)
            let sequence = bytes[end..<(end + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            state.append((origins.number(of: name), sequence))
            position = end + 8
        }
        return state
    }
}
