import DequeModule

/// The decisions of one activation: its mailbox, when to activate, which batch to handle,
/// the output gate (which replies go out, and when), the commit pipeline with its retries
/// and deadline, the lease check, and how the activation stops.
///
/// Pure: events and instants in, actions out. No locks, no I/O, no clock reads. The runtime
/// (``Activation``) keeps it behind a lock and carries out the actions; the cluster
/// simulation (`DNATesting`) runs the same machine under simulated time and faults.
///
/// - `Message`: what a mailbox holds (the runtime's envelope).
/// - `Held`: a reply held behind the output gate, with its result.
/// - `Waiter`: how the activation's task waits (a continuation).
package struct ActivationStateMachine<Message, Held, Waiter> {
    package struct Limits: Sendable {
        package var mailboxCapacity: Int
        package var maxBatch: Int
        package var pipelineDepth: Int
        package var commitTimeout: Duration

        package init(mailboxCapacity: Int, maxBatch: Int, pipelineDepth: Int, commitTimeout: Duration) {
            self.mailboxCapacity = mailboxCapacity
            self.maxBatch = maxBatch
            self.pipelineDepth = pipelineDepth
            self.commitTimeout = commitTimeout
        }
    }

    /// The activation's one task.
    enum TaskPhase {
        /// No task runs; the next message starts one.
        case none
        case running
        /// The task waits for a message, a commit's answer or a retry's time.
        case parked(Waiter)
    }

    /// The actor instance's life.
    enum Life {
        /// No instance: the next batch activates one (claims the name, loads the data).
        case inactive
        case activating
        case active(Registration, leaseGeneration: UInt64)
    }

    /// A batch handed to the store, oldest first.
    struct Commit {
        enum Status {
            case inFlight
            case durable
            case failed(StoreError)
            case retrying(at: DNAInstant)
        }

        var batch: CommitBatch
        var held: [Held]
        var status: Status
        /// A store attempt for it ended with an unknown outcome: it may have been applied.
        var ambiguous = false

        var isDurable: Bool {
            if case .durable = status { return true }
            return false
        }
    }

    let id: ActorID
    let limits: Limits
    private(set) var queue = Deque<Message>()
    private var task = TaskPhase.none
    /// No more messages are taken (stopped for good, or moving elsewhere).
    private(set) var stopped = false
    private(set) var lastActivity: DNAInstant
    private var idleWaiters: [Waiter] = []
    private(set) var life = Life.inactive
    private var commits = Deque<Commit>()
    private var lastSequence: Int64 = 0
    /// Writes of the initialiser are durable before the first message is handled.
    private var initialCommitPending = false
    /// When the oldest commit first failed; the retries end `commitTimeout` later.
    private var failingSince: DNAInstant?
    private var retryDelay = Self.firstRetryDelay
    private var deactivationRequested = false
    /// The batch taken just before activating is handled right after, as before.
    private var justActivated = false

    static var firstRetryDelay: Duration { .milliseconds(5) }
    static var maxRetryDelay: Duration { .seconds(1) }

    package init(id: ActorID, limits: Limits, now: DNAInstant) {
        self.id = id
        self.limits = limits
        self.lastActivity = now
    }

    // MARK: Mailbox

    package enum EnqueueOutcome {
        /// Queued; resume the parked task if there is one.
        case accepted(resume: Waiter?)
        /// Queued; no task runs: start one.
        case acceptedStartTask
        case full
        case stopped
    }

    package mutating func enqueue(_ message: Message) -> EnqueueOutcome {
        if stopped { return .stopped }
        if queue.count >= limits.mailboxCapacity { return .full }
        queue.append(message)
        switch task {
        case .none:
            task = .running
            return .acceptedStartTask
        case .running:
            return .accepted(resume: nil)
        case .parked(let waiter):
            task = .running
            return .accepted(resume: waiter)
        }
    }

    package var isRunning: Bool {
        if case .none = task { return false }
        return true
    }

    package var registration: Registration? {
        if case .active(let registration, _) = life { return registration }
        return nil
    }

    package var leaseGeneration: UInt64? {
        if case .active(_, let generation) = life { return generation }
        return nil
    }

    /// Commits handed to the store and not yet seen through.
    package var commitsInFlight: Int { commits.count }

    // MARK: The task's next step

    package enum Step {
        /// Handle these messages, then call ``handled(operations:held:now:)``.
        case handle([Message])
        /// Claim the name and load the data, then call ``activated(_:now:)``.
        case activate
        /// Hand this batch to the store again (a retry); its answer comes to
        /// ``commitCompleted(sequence:result:now:)``.
        case commit(CommitBatch)
        /// Wait until a message, a commit's answer or `until` (a retry's time) comes, with
        /// ``park(_:)``; then ask again.
        case wait(until: DNAInstant?)
        /// The activation gave up on its batches and goes back to its last durable state:
        /// fail `held` with `error`, give the name up, drop the instance; the next message
        /// activates afresh.
        case reset(held: [Held], error: DNAError, release: Registration)
        /// The activation stops for good: fail `held` and `queued` with `error`, drop the
        /// instance, leave the directory; wake `waiters`.
        case stop(held: [Held], queued: [Message], error: DNAError, waiters: [Waiter])
        /// The actor asked to be deactivated and everything is durable: give the name up
        /// and drop the instance (the activation stays; the next message activates afresh).
        case deactivate(release: Registration)
        /// Nothing left to do: the task ends; wake `waiters`.
        case exit(waiters: [Waiter])
    }

    /// What the activation's task does next, at `now`, with the node's `lease`.
    package mutating func nextStep(now: DNAInstant, lease: NodeLease.Snapshot) -> Step {
        if stopped {
            task = .none
            return .exit(waiters: takeIdleWaiters())
        }
        // Commits the store has answered are seen through first: a failure is retried
        // now, not only once the mailbox runs dry.
        while let oldest = commits.first {
            switch oldest.status {
            case .durable:
                commits.removeFirst()
                continue
            case .inFlight:
                break
            case .retrying(let at):
                if now >= at {
                    commits[0].status = .inFlight
                    return .commit(oldest.batch)
                }
            case .failed(let error):
                if let step = failed(error, now: now) { return step }
                continue
            }
            break
        }
        switch life {
        case .activating:
            return .wait(until: nil)
        case .inactive:
            guard !queue.isEmpty else { return idleOrWait(now: now) }
            justActivated = true
            life = .activating
            return .activate
        case .active(let registration, let generation):
            if initialCommitPending { return .wait(until: retryTime) }
            if !queue.isEmpty && commits.count < limits.pipelineDepth {
                if !justActivated && !lease.mayServe(generation: generation, at: now) {
                    return stopServing(registration)
                }
                justActivated = false
                return .handle(takeBatch())
            }
            if queue.isEmpty && commits.isEmpty && deactivationRequested {
                deactivationRequested = false
                life = .inactive
                return .deactivate(release: registration)
            }
            return idleOrWait(now: now)
        }
    }

    private var retryTime: DNAInstant? {
        guard let oldest = commits.first, case .retrying(let at) = oldest.status else { return nil }
        return at
    }

    private mutating func idleOrWait(now: DNAInstant) -> Step {
        if queue.isEmpty && commits.isEmpty {
            task = .none
            lastActivity = now
            return .exit(waiters: takeIdleWaiters())
        }
        return .wait(until: retryTime)
    }

    private mutating func takeBatch() -> [Message] {
        let count = min(queue.count, limits.maxBatch)
        if count == queue.count {
            defer { queue = Deque(minimumCapacity: min(count, limits.maxBatch)) }
            return Array(queue)
        }
        let batch = Array(queue[..<count])
        queue.removeFirst(count)
        return batch
    }

    private mutating func takeIdleWaiters() -> [Waiter] {
        defer { idleWaiters = [] }
        return idleWaiters
    }

    /// Parks the task after a ``Step/wait(until:)``, unless something it waits for came
    /// meanwhile: then returns `false` and the task asks again at once.
    package mutating func park(_ waiter: Waiter, now: DNAInstant) -> Bool {
        if hasWork(now: now) { return false }
        task = .parked(waiter)
        return true
    }

    /// Whether ``nextStep(now:lease:)`` would do something other than wait.
    private func hasWork(now: DNAInstant) -> Bool {
        if stopped { return true }
        if let oldest = commits.first {
            switch oldest.status {
            case .inFlight: break
            case .durable, .failed: return true
            case .retrying(let at): if now >= at { return true }
            }
        }
        switch life {
        case .activating: return false
        case .inactive: return !queue.isEmpty || commits.isEmpty
        case .active:
            if initialCommitPending { return false }
            if !queue.isEmpty { return commits.count < limits.pipelineDepth }
            return commits.isEmpty
        }
    }

    /// The retry time passed: the parked task, if any, to resume.
    package mutating func wake() -> Waiter? {
        guard case .parked(let waiter) = task else { return nil }
        task = .running
        return waiter
    }

    // MARK: Activation

    package enum ActivationOutcome {
        /// The name is ours; `operations` are the initialiser's writes.
        case granted(Registration, leaseGeneration: UInt64, operations: [StorageOperation])
        /// Activating failed: the queue fails with `error` and the activation stops.
        case failed(DNAError)
    }

    package enum ActivatedAction {
        case none
        /// Commit the initialiser's writes (sequence 1) before the first message.
        case commit(CommitBatch)
        case stop(queued: [Message], error: DNAError, waiters: [Waiter])
    }

    package mutating func activated(_ outcome: ActivationOutcome, now: DNAInstant) -> ActivatedAction {
        switch outcome {
        case .granted(let registration, let generation, let operations):
            life = .active(registration, leaseGeneration: generation)
            lastSequence = 0
            guard !operations.isEmpty else { return .none }
            lastSequence = 1
            initialCommitPending = true
            let batch = CommitBatch(registration: registration, sequence: 1, operations: operations)
            commits.append(Commit(batch: batch, held: [], status: .inFlight))
            return .commit(batch)
        case .failed(let error):
            life = .inactive
            let (queued, waiters) = stop()
            return .stop(queued: queued, error: error, waiters: waiters)
        }
    }

    /// The name is owned by another node: the activation stops taking messages and hands
    /// over what it queued (to be forwarded there, in order).
    package mutating func stopAndTakeQueue() -> (queued: [Message], waiters: [Waiter]) {
        life = .inactive
        return stop()
    }

    // MARK: Batches and the output gate

    package enum HandledAction {
        case none
        /// Hand this batch to the store; its answer comes to ``commitCompleted(sequence:result:now:)``.
        case commit(CommitBatch)
        /// Release these replies now.
        case release([Held])
    }

    /// The task handled a batch: its writes and the replies it holds behind the gate.
    package mutating func handled(operations: [StorageOperation], held: [Held], now: DNAInstant) -> HandledAction {
        guard case .active(let registration, _) = life else { return .none }
        if operations.isEmpty {
            guard let last = commits.last, !last.isDurable else { return held.isEmpty ? .none : .release(held) }
            // Released with the last batch in flight: these replies may have seen its writes.
            commits[commits.count - 1].held.append(contentsOf: held)
            return .none
        }
        lastSequence += 1
        let batch = CommitBatch(registration: registration, sequence: lastSequence, operations: operations)
        commits.append(Commit(batch: batch, held: held, status: .inFlight))
        return .commit(batch)
    }

    package mutating func requestDeactivation() { deactivationRequested = true }

    // MARK: Commits

    package struct CompletionAction {
        /// Replies whose batch is durable.
        package var release: [Held] = []
        /// The task to resume, if it is parked.
        package var resume: Waiter?
    }

    /// The store answered the commit of `sequence`.
    package mutating func commitCompleted(sequence: Int64, result: Result<Void, StoreError>, now: DNAInstant)
        -> CompletionAction
    {
        var action = CompletionAction()
        guard let index = commits.firstIndex(where: { $0.batch.sequence == sequence }) else { return action }
        switch result {
        case .success:
            // The store applies an activation's batches strictly in sequence: every earlier
            // batch is durable too, whatever order the answers arrive in.
            for earlier in 0...index {
                commits[earlier].status = .durable
                action.release.append(contentsOf: commits[earlier].held)
                commits[earlier].held = []
            }
            failingSince = nil
            retryDelay = Self.firstRetryDelay
            if commits[0].batch.sequence == 1 { initialCommitPending = false }
        case .failure(let error):
            if error.code == .outcomeUnknown { commits[index].ambiguous = true }
            commits[index].status = .failed(error)
        }
        if case .parked(let waiter) = task {
            task = .running
            action.resume = waiter
        }
        return action
    }

    /// The oldest commit failed with `error`: retry it, or give up.
    private mutating func failed(_ error: StoreError, now: DNAInstant) -> Step? {
        guard case .active(let registration, _) = life else { return nil }
        if error.code == .fenced {
            return fence(StoreError(error.code, error.message))
        }
        let since = failingSince ?? now
        failingSince = since
        let deadline = since + limits.commitTimeout
        if error.isRetryable && now < deadline {
            let at = min(now + retryDelay, deadline)
            retryDelay = min(retryDelay * 2, Self.maxRetryDelay)
            commits[0].status = .retrying(at: at)
            return nil
        }
        let failure = DNAError(
            .commitFailed,
            error.isRetryable
                ? "\(id): batch not committed within \(limits.commitTimeout); the actor went back to its last durable state"
                : "\(id): the store refused the batch; the actor went back to its last durable state",
            underlying: error)
        // Back to the last durable state: the next message re-activates from the store.
        let held = commits.flatMap(\.held)
        commits.removeAll()
        resetPipeline()
        life = .inactive
        return .reset(held: held, error: failure, release: registration)
    }

    /// The name was taken by a newer owner: this activation must never write again.
    private mutating func fence(_ error: StoreError) -> Step {
        let failure = DNAError(.fenced, "\(id) was taken over by a newer activation", underlying: error)
        let held = commits.flatMap(\.held)
        commits.removeAll()
        resetPipeline()
        life = .inactive
        let (queued, waiters) = stop()
        return .stop(held: held, queued: queued, error: failure, waiters: waiters)
    }

    /// The node lost its lease: another node may own the name by now, so this activation
    /// answers nothing more, not even reads.
    private mutating func stopServing(_ registration: Registration) -> Step {
        let failure = DNAError(
            .fenced, "the node has not reached the store within the failure timeout; \(id) stopped here, retry to reach its owner")
        let held = commits.flatMap(\.held)
        commits.removeAll()
        resetPipeline()
        life = .inactive
        let (queued, waiters) = stop()
        return .stop(held: held, queued: queued, error: failure, waiters: waiters)
    }

    private mutating func resetPipeline() {
        failingSince = nil
        retryDelay = Self.firstRetryDelay
        initialCommitPending = false
        deactivationRequested = false
    }

    private mutating func stop() -> (queued: [Message], waiters: [Waiter]) {
        stopped = true
        let queued = Array(queue)
        queue = []
        return (queued, takeIdleWaiters())
    }

    // MARK: Passivation and shutdown

    /// Stops the activation if it is idle (no task, nothing queued) since before `cutoff`
    /// (`nil`: idle now, as at shutdown); returns the registration to give back, or
    /// `.some(nil)` when it stopped holding none. `hasTimers`: timers keep it active
    /// unless shutting down.
    package mutating func stopIfIdle(since cutoff: DNAInstant?, hasTimers: Bool) -> Registration?? {
        guard !stopped, case .none = task, queue.isEmpty, cutoff == nil || !hasTimers else { return nil }
        if let cutoff, lastActivity > cutoff { return nil }
        stopped = true
        let registration = self.registration
        life = .inactive
        return .some(registration)
    }

    /// Adds a waiter for the moment the task has nothing left to do; `false`: it is idle now.
    package mutating func waitUntilIdle(_ waiter: Waiter) -> Bool {
        guard isRunning else { return false }
        idleWaiters.append(waiter)
        return true
    }
}
