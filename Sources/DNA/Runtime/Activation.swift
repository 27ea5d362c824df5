import DequeModule
import Logging
import Synchronization

/// The node's view of an activation, whatever its actor type.
protocol AnyActivation: AnyObject, Sendable {
    var id: ActorID { get }
    func enqueue(_ envelope: Envelope) -> EnqueueResult
    /// Marks the activation stopped if it is idle (no task, empty mailbox, no timers) since
    /// before `cutoff`. Called with the node's directory locked.
    func stopIfIdle(since cutoff: ContinuousClock.Instant?) -> Bool
    /// After ``stopIfIdle(since:)`` said yes: gives the name back and frees the instance.
    func finishStop() async
    /// Waits until the activation has no task running (its mailbox handled and committed).
    func waitUntilIdle() async
}

enum EnqueueResult {
    case accepted
    case stopped
    case full
}

/// The mailbox of an ``Activation``, behind its lock.
struct ActivationMailbox {
    var queue = Deque<Envelope>()
    /// A drain task exists.
    var running = false
    var stopped = false
    var lastActivity = ContinuousClock.now
    var idleWaiters: [UnsafeContinuation<Void, Never>] = []
    /// The drain task, parked until a message arrives or a commit completes.
    var parked: UnsafeContinuation<Void, Never>?
}

/// The life of one actor instance on this node: its mailbox, the task that handles it in
/// batches, the staging of writes, the output gate and the commit pipeline.
///
/// Ownership: the mailbox state is behind a lock; everything else (`instance`, `context`,
/// `registration`, `inFlight`) belongs to the one drain task, which the mailbox state
/// machine guarantees never runs twice at once.
final class Activation<A: DurableActor>: AnyActivation, @unchecked Sendable {
    let id: ActorID
    private let kind: KindRuntime<A>
    private unowned let node: Node
    // Not generic (declared outside this class): senders reach `enqueue` through
    // `any AnyActivation`, where a type nested in a generic class costs a metadata lookup
    // on every access.
    private let mailbox = Mutex(ActivationMailbox())
    // Copied from the node's configuration: reading them through `node` would copy the
    // whole configuration on every message.
    private let mailboxCapacity: Int
    private let maxBatch: Int
    private let commitPipelineDepth: Int
    private let timers = TimerSet()

    // Owned by the drain task.
    private var instance: A?
    private var context: ActorContext?
    private var registration: Registration?
    /// Batches handed to the store and not yet seen through, oldest first.
    private var inFlight = Deque<InFlightCommit>()
    private var lastSequence: Int64 = 0
    /// The node's lease this activation was made under (see ``Node/holdsLease(since:)``).
    private var leaseGeneration: UInt64 = 0

    init(id: ActorID, kind: KindRuntime<A>, node: Node) {
        self.id = id
        self.kind = kind
        self.node = node
        mailboxCapacity = node.configuration.mailboxCapacity
        maxBatch = node.configuration.maxBatch
        commitPipelineDepth = node.configuration.commitPipelineDepth
    }

    // MARK: Mailbox

    func enqueue(_ envelope: Envelope) -> EnqueueResult {
        let capacity = mailboxCapacity
        let (result, start, parked): (EnqueueResult, Bool, UnsafeContinuation<Void, Never>?) = mailbox.withLock { state in
            if state.stopped { return (.stopped, false, nil) }
            if state.queue.count >= capacity { return (.full, false, nil) }
            state.queue.append(envelope)
            if state.running {
                let parked = state.parked
                state.parked = nil
                return (.accepted, false, parked)
            }
            state.running = true
            return (.accepted, true, nil)
        }
        if start { Task { await self.drain() } }
        parked?.resume()
        return result
    }

    func stopIfIdle(since cutoff: ContinuousClock.Instant?) -> Bool {
        mailbox.withLock { state in
            guard !state.stopped, !state.running, state.queue.isEmpty, cutoff == nil || timers.isEmpty else { return false }
            if let cutoff, state.lastActivity > cutoff { return false }
            state.stopped = true
            return true
        }
    }

    func finishStop() async {
        await release(dropInstance())
        node.metrics.passivations.increment()
    }

    /// Drops the actor instance, its context and its timers; returns the registration it
    /// held. The next message activates the actor afresh from the store.
    private func dropInstance() -> Registration? {
        timers.cancelAll()
        instance = nil
        context = nil
        defer { registration = nil }
        return registration
    }

    /// Gives the name back, so any node may claim it at once.
    private func release(_ registration: Registration?) async {
        guard let registration else { return }
        do { try await node.store.release(registration) } catch {
            // The name stays ours until the failure timeout; nothing is lost.
            node.logger.debug("could not release name", metadata: ["actor": "\(id)", "error": "\(error)"])
        }
    }

    func waitUntilIdle() async {
        await withUnsafeContinuation { continuation in
            let idle = mailbox.withLock { state in
                if !state.running { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Takes the next batch; when there is none and nothing is in flight, ends the task.
    private func nextBatch() -> [Envelope]? {
        let maxBatch = self.maxBatch
        let hasInFlight = !inFlight.isEmpty
        let (batch, waiters): ([Envelope]?, [UnsafeContinuation<Void, Never>]) = mailbox.withLock { state in
            let count = min(state.queue.count, maxBatch)
            if count == 0 {
                if hasInFlight { return ([], []) }
                state.running = false
                state.lastActivity = .now
                defer { state.idleWaiters = [] }
                return (nil, state.idleWaiters)
            }
            // Short critical section: senders are waiting on this lock.
            if count == state.queue.count {
                defer { state.queue = Deque(minimumCapacity: min(count, maxBatch)) }
                return (Array(state.queue), [])
            }
            let batch = Array(state.queue[..<count])
            state.queue.removeFirst(count)
            return (batch, [])
        }
        for waiter in waiters { waiter.resume() }
        return batch
    }

    // MARK: Drain task

    private func drain() async {
        while true {
            guard let batch = nextBatch() else { return }
            if batch.isEmpty {
                // Nothing queued, commits in flight: settle those that completed, else wait
                // for a commit to complete or a message to arrive, whichever comes first.
                if inFlight[0].isComplete {
                    await settleOldest()
                    if isStopped { return }
                } else {
                    await park()
                }
                continue
            }
            // Commits the store has answered are seen through first: a failure is retried
            // now, not only once the mailbox runs dry.
            while let oldest = inFlight.first, oldest.isComplete {
                if let failure = await settleOldest(), isStopped {
                    for envelope in batch { envelope.reply?.resume(throwing: failure) }
                    return
                }
            }
            if instance == nil {
                switch await activate() {
                case .ready:
                    break
                case .failed(let failure):
                    for envelope in batch { envelope.reply?.resume(throwing: failure) }
                    return
                case .ownedElsewhere(let owner):
                    if await node.relocate(self, kind: kind, batch: batch, to: owner, takingQueue: stopTakingQueue) { return }
                    let failure = DNAError(.ownedElsewhere, "\(id) is active on node \(owner), which this node cannot reach")
                    stop(failingQueuedWith: failure)
                    for envelope in batch { envelope.reply?.resume(throwing: failure) }
                    return
                }
            } else if !node.holdsLease(since: leaseGeneration) {
                stopServing(batch)
                return
            }
            await handle(batch)
            if isStopped { return }
        }
    }

    private var isStopped: Bool { mailbox.withLock { $0.stopped } }

    /// Suspends the drain task until a message arrives or the oldest commit completes.
    private func park() async {
        let oldest = inFlight.first
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let resumeNow: Bool = mailbox.withLock { state in
                if !state.queue.isEmpty || oldest?.isComplete == true { return true }
                state.parked = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Called when a commit completes, on the store's thread.
    private func wake() {
        let parked: UnsafeContinuation<Void, Never>? = mailbox.withLock { state in
            let parked = state.parked
            state.parked = nil
            return parked
        }
        parked?.resume()
    }

    private func handle(_ batch: [Envelope]) async {
        guard let instance, let context, let registration else { return }
        var held: [HeldReply] = []
        // Batches are mostly of one request type: look its handler up once.
        var lastType: ObjectIdentifier?
        var lastHandler: HandlerEntry?
        for envelope in batch {
            if envelope.requestType != lastType {
                lastType = envelope.requestType
                lastHandler = kind.handlers.entries[envelope.requestType]
            }
            guard let handler = lastHandler else {
                // Checked when sent; kept as a guard against a handler table mismatch.
                envelope.reply?.resume(throwing: DNAError(.unhandledRequest, "\(A.kind) has no handler for this request"))
                continue
            }
            let result: Result<any Sendable, any Error>
            do {
                result = .success(try await handler.invoke(instance, envelope.message, context))
                context.log.endMessage()
            } catch {
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
                    reply.resume(with: result)
                } else {
                    held.append(HeldReply(reply: reply, result: result))
                }
            }
        }
        node.metrics.messages.increment(by: batch.count)
        let operations = context.log.take()

        // Up to `commitPipelineDepth` batches go to the store at once; the store applies them
        // in sequence, so none is committed on top of one that failed.
        while inFlight.count >= commitPipelineDepth {
            if let failure = await settleOldest() {
                for reply in held { reply.reply.resume(throwing: failure) }
                return
            }
        }
        if operations.isEmpty {
            if inFlight.isEmpty {
                for reply in held { reply.release() }
            } else {
                // Released with the last batch in flight: these replies may have seen its writes.
                inFlight[inFlight.count - 1].append(held)
            }
        } else {
            lastSequence += 1
            let commit = InFlightCommit(
                batch: CommitBatch(registration: registration, sequence: lastSequence, operations: operations), held: held)
            inFlight.append(commit)
            node.metrics.batches.increment()
            node.store.commit(commit.batch) { [self] result in
                commit.complete(result)
                wake()
            }
        }
        if context.deactivationRequested {
            await deactivate()
        }
    }

    /// Sees every commit in flight through; `nil` when all are durable.
    @discardableResult
    private func settleAll() async -> DNAError? {
        while !inFlight.isEmpty {
            if let failure = await settleOldest() { return failure }
        }
        return nil
    }

    /// Waits for the oldest commit in flight; retries it with backoff if it failed. Returns
    /// `nil` when it is durable (its replies released), or the error its callers got when it
    /// could not be made durable; then every later batch in flight failed with it and the
    /// activation went back to its last durable state (or stopped, if fenced).
    @discardableResult
    private func settleOldest() async -> DNAError? {
        let commit = inFlight.removeFirst()
        let error: StoreError
        switch await commit.wait() {
        case .success: return nil
        case .failure(let failure): error = failure
        }
        node.metrics.commitFailures.increment()
        if error.code == .fenced { return fence(error, failing: commit) }
        if error.code != .predecessorMissing {
            node.logger.warning("commit failed; retrying", metadata: ["actor": "\(id)", "error": "\(error)"])
        }
        switch await commitWithRetry(commit.batch, firstError: error) {
        case .success:
            commit.releaseHeld()
            return nil
        case .failure(let final):
            if final.code == .fenced { return fence(final, failing: commit) }
            let failure = DNAError(
                .commitFailed,
                final.isRetryable
                    ? "\(id): batch not committed within \(node.configuration.commitTimeout); the actor went back to its last durable state"
                    : "\(id): the store refused the batch; the actor went back to its last durable state",
                underlying: final)
            node.logger.error("commit failed for good; resetting activation", metadata: ["actor": "\(id)", "error": "\(final)"])
            commit.fail(failure)
            failInFlight(failure)
            // Back to the last durable state: the next message re-activates from the store.
            // The name is given back (fenced by epoch, so harmless if we claim it again).
            await release(dropInstance())
            return failure
        }
    }

    /// Fails the held replies of every batch still in flight (they can no longer commit:
    /// their predecessor did not).
    private func failInFlight(_ failure: DNAError) {
        while let commit = inFlight.popFirst() { commit.fail(failure) }
    }

    /// Commits `batch`, retrying with backoff until the commit timeout.
    private func commitWithRetry(_ batch: CommitBatch, firstError: StoreError? = nil) async -> Result<Void, StoreError> {
        let clock = ContinuousClock()
        let deadline = clock.now + node.configuration.commitTimeout
        var delay = Duration.milliseconds(5)
        var lastError = firstError
        if firstError == nil {
            do { try await node.store.commit(batch); return .success(()) } catch { lastError = error }
        }
        while true {
            guard let error = lastError, error.isRetryable, error.code != .fenced else { break }
            let now = clock.now
            if now >= deadline { break }
            let remaining: Duration = deadline - now
            try? await clock.sleep(for: delay < remaining ? delay : remaining)
            delay = delay * 2 > .seconds(1) ? .seconds(1) : delay * 2
            do {
                try await node.store.commit(batch)
                return .success(())
            } catch {
                lastError = error
            }
        }
        return .failure(lastError ?? StoreError(.unavailable, "commit failed"))
    }

    /// The name was taken by a newer owner: this activation must never write again. Fails
    /// held, in-flight and queued callers with a retryable error and stops.
    private func fence(_ error: StoreError, failing commit: InFlightCommit) -> DNAError {
        let failure = DNAError(.fenced, "\(id) was taken over by a newer activation", underlying: error)
        node.logger.warning("activation fenced; stopping", metadata: ["actor": "\(id)"])
        commit.fail(failure)
        failInFlight(failure)
        stop(failingQueuedWith: failure)
        _ = dropInstance()
        return failure
    }

    /// Marks the activation stopped, removes it from the node and fails what is queued.
    private func stop(failingQueuedWith error: DNAError) {
        let (queued, waiters) = node.removeFromDirectory(self) {
            mailbox.withLock { state -> (Deque<Envelope>, [UnsafeContinuation<Void, Never>]) in
                state.stopped = true
                state.running = false
                defer {
                    state.queue = []
                    state.idleWaiters = []
                }
                return (state.queue, state.idleWaiters)
            }
        }
        for envelope in queued { envelope.reply?.resume(throwing: error) }
        for waiter in waiters { waiter.resume() }
    }

    /// The node lost its lease (no heartbeat for most of the failure timeout): another node
    /// may own the name by now, so this activation answers nothing more, not even reads.
    /// Commits already handed to the store stay fenced by the epoch.
    private func stopServing(_ batch: [Envelope]) {
        let failure = DNAError(
            .fenced, "node \(node.id) has not reached the store within the failure timeout; \(id) stopped here, retry to reach its owner")
        node.logger.warning("lease lost; activation stops serving", metadata: ["actor": "\(id)"])
        for envelope in batch { envelope.reply?.resume(throwing: failure) }
        failInFlight(failure)
        stop(failingQueuedWith: failure)
        _ = dropInstance()
    }

    /// Marks the activation stopped and hands its queued messages over (to be forwarded).
    private func stopTakingQueue() -> [Envelope] {
        let (queued, waiters) = mailbox.withLock { state -> (Deque<Envelope>, [UnsafeContinuation<Void, Never>]) in
            state.stopped = true
            state.running = false
            defer {
                state.queue = []
                state.idleWaiters = []
            }
            return (state.queue, state.idleWaiters)
        }
        for waiter in waiters { waiter.resume() }
        return Array(queued)
    }

    private enum ActivationResult {
        case ready
        case failed(DNAError)
        case ownedElsewhere(NodeID)
    }

    /// Claims the name, loads the data, runs the initialiser and commits its writes.
    private func activate() async -> ActivationResult {
        let started = ContinuousClock.now
        do {
            if !node.holdsLease {
                // Claim only while the node's heartbeat is fresh, or it would stop serving at once.
                try await node.renewLease()
            }
            leaseGeneration = node.currentLeaseGeneration
            let outcome = try await node.store.activate(
                ActivationRequest(actor: id, node: node.id, failureTimeout: node.configuration.failureTimeout))
            guard case .granted(let granted, let rows) = outcome else {
                if case .ownedElsewhere(let owner) = outcome { return .ownedElsewhere(owner) }
                throw DNAError(.activationFailed, "\(id): unexpected activation outcome")
            }
            registration = granted
            lastSequence = 0
            let context = ActorContext(id: id, rows: rows, node: node, timers: timers)
            let instance = try await A(context: context)
            let operations = context.log.take()
            context.log.endMessage()
            if !operations.isEmpty {
                lastSequence = 1
                try await commitWithRetry(CommitBatch(registration: granted, sequence: 1, operations: operations)).get()
            }
            self.instance = instance
            self.context = context
            node.metrics.activations.increment()
            node.metrics.activationDuration.record(duration: ContinuousClock.now - started)
            return .ready
        } catch {
            let failure = DNAError(.activationFailed, "\(id) could not be activated", underlying: error)
            node.logger.warning("activation failed", metadata: ["actor": "\(id)", "error": "\(error)"])
            stop(failingQueuedWith: failure)
            await release(dropInstance())
            return .failed(failure)
        }
    }

    /// Ends this activation at the actor's request, once its last batch is durable. The
    /// activation stays in the directory; its next message activates a fresh instance.
    private func deactivate() async {
        guard await settleAll() == nil else { return }
        await release(dropInstance())
        node.metrics.passivations.increment()
    }
}
