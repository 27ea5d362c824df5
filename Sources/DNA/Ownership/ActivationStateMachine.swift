import DNATransport
import DequeModule

/// A message that knows where it comes from and its place in the order its origin sent
/// it: an activation handles a message only if it is later than every message of the same
/// origin it handled. When the route to an actor changes while messages are under way, a
/// message that was overtaken is refused rather than handled out of order.
package protocol OrderedMessage {
    /// The origin node, as the receiving node numbers origins.
    var origin: UInt32 { get }
    /// 0: not numbered (always handled).
    var sequence: UInt64 { get }
}

/// The decisions of one activation: its mailbox, when to activate, which batch to handle,
/// the output gate (which replies go out, when, and with what), the commit pipeline with
/// its retries and deadline, the lease check, and how the activation stops.
///
/// Pure: events and instants in, actions out. No locks, no I/O, no clock reads. The runtime
/// (``Activation``) keeps it behind a lock and carries out the actions; the cluster
/// simulation (`DNATesting`) runs the same machine under simulated time and faults.
///
/// What a caller is told about a batch handed to the store:
/// - success, once the batch is durable (or a later batch is: batches apply in sequence);
/// - a retryable error (`fenced`, `commitFailed`) only when every attempt of the batch was
///   refused by the store and none is still under way, so it certainly did not happen;
/// - `outcomeUnknown` when an attempt's answer was lost and nothing settled it since.
/// Nobody is told anything while an attempt of their batch is under way.
///
/// - `Message`: what a mailbox holds (the runtime's envelope).
/// - `Held`: a reply held behind the output gate, with its result.
/// - `Waiter`: how the activation's task waits (a continuation).
package struct ActivationStateMachine<Message: OrderedMessage, Held, Waiter> {
    package struct Limits: Sendable {
        package var mailboxCapacity: Int
        package var maxBatch: Int
        package var pipelineDepth: Int
        /// How long after a batch is handed to the store its callers may wait for the
        /// outcome: attempts are made (and bounded) within it.
        package var commitTimeout: Duration
        /// Whether the task is told of each durable batch (``Step/didCommit(messages:)``).
        package var reportsCommits: Bool
        /// Whether the first batch of each origin in an activation stores the order before
        /// it answers (in a cluster; see ``OriginOrder``).
        package var storesNewOrigins: Bool

        package init(
            mailboxCapacity: Int, maxBatch: Int, pipelineDepth: Int, commitTimeout: Duration, reportsCommits: Bool = false,
            storesNewOrigins: Bool = false
        ) {
            self.mailboxCapacity = mailboxCapacity
            self.maxBatch = maxBatch
            self.pipelineDepth = pipelineDepth
            self.commitTimeout = commitTimeout
            self.reportsCommits = reportsCommits
            self.storesNewOrigins = storesNewOrigins
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

    /// A move of the activation to another node.
    final class Migration {
        let target: NodeID
        let reply: MigrationReply

        init(target: NodeID, reply: MigrationReply) {
            self.target = target
            self.reply = reply
        }
    }

    /// The callers of one batch and what they are told.
    package struct Failure {
        package var held: [Held]
        package var error: DNAError
        /// Casts handled in the batch, lost with it (nobody to tell) unless `error` is
        /// ``DNAError/Code/outcomeUnknown``.
        package var casts = 0
    }

    let id: ActorID
    let limits: Limits
    private(set) var queue = Deque<Message>()
    private var task = TaskPhase.none
    /// No more messages are taken (stopped for good, or moving elsewhere). Commits in
    /// flight are still seen through.
    private(set) var stopped = false
    private(set) var lastActivity: DNAInstant
    private var idleWaiters: [Waiter] = []
    private(set) var life = Life.inactive
    /// The batches handed to the store, their retries and how a failure settles.
    private var commits = CommitPipeline<Held>()
    private var deactivationRequested = false
    /// A move to another node was asked for (``requestMigration(to:reply:)``); a reference,
    /// so that an activation that never moves pays 8 bytes for it.
    private var migration: Migration?
    /// The hand-over was given to the store; ``migrated()`` follows.
    private var migrationUnderWay = false
    /// Per origin, the latest message handled (see ``OriginOrder``).
    private var order = OriginOrder()

    package init(id: ActorID, limits: Limits, now: DNAInstant) {
        self.id = id
        self.limits = limits
        self.lastActivity = now
        order.storesNewOrigins = limits.storesNewOrigins
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
        let (start, resume) = runTask()
        return start ? .acceptedStartTask : .accepted(resume: resume)
    }

    /// There is work for the task: whether one must be started, else the parked task to
    /// resume (if it is parked).
    private mutating func runTask() -> (start: Bool, resume: Waiter?) {
        switch task {
        case .none:
            task = .running
            return (true, nil)
        case .running:
            return (false, nil)
        case .parked(let waiter):
            task = .running
            return (false, waiter)
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
        /// Handle these messages, then call ``handled(operations:held:now:lease:)``; refuse
        /// `refused` (overtaken by a later message of their origin) without handling them.
        case handle([Message], refused: [Message])
        /// Claim the name and load the data, then call ``activated(_:now:)``.
        case activate
        /// Hand this batch to the store again (a retry); its answer comes to
        /// ``commitCompleted(sequence:result:now:)``.
        case commit(CommitBatch)
        /// Wait until a message, a commit's answer or `until` (a retry's time) comes, with
        /// ``park(_:now:)``; then ask again.
        case wait(until: DNAInstant?)
        /// The activation gave up on its batches and goes back to its last durable state:
        /// tell each batch's callers their error, give the name up, drop the instance; the
        /// next message activates afresh.
        case reset(failures: [Failure], release: Registration)
        /// The activation takes no more messages: leave the directory, deliver `queued`
        /// afresh (they were never handled; the name may be another node's by now), refuse
        /// `refused` as out of order, tell each batch's callers their error (`error` is why
        /// it stopped), drop the instance, wake `waiters`. Commits still under way are seen
        /// through by the task, which then exits.
        ///
        /// `refused`: queued messages overtaken by one this activation handled. It stops
        /// without having stored its order (fenced, or its lease ran out), so the next owner
        /// would not know of the later message — one it answered from memory, say a read —
        /// and would handle the earlier one after it.
        case stop(failures: [Failure], queued: [Message], refused: [Message], error: DNAError, waiters: [Waiter])
        /// The actor asked to be deactivated and everything is durable: give the name up
        /// and drop the instance (the activation stays; the next message activates afresh).
        case deactivate(release: Registration)
        /// A move was asked for and everything handled is durable (messages queued since
        /// wait): hand the name over to `target` in the store, then call ``migrated()``
        /// whatever the store answered.
        case migrate(Registration, to: NodeID, reply: MigrationReply)
        /// A batch of `messages` messages is durable (only with ``Limits/reportsCommits``):
        /// run the actor's hook, then ask again.
        case didCommit(messages: Int)
        /// The name is about to be given up (a move, a deactivation, a stop) and the latest
        /// message of some origin changed since the last batch that wrote: store it first
        /// (``takeOrderState()``, then ``commitOrder(_:now:)``), so that the next owner
        /// still refuses what this activation's messages overtook; then ask again.
        case storeOrder
        /// Nothing left to do: the task ends; wake `waiters`.
        case exit(waiters: [Waiter])
    }

    /// What the activation's task does next, at `now`, with the node's `lease`.
    package mutating func nextStep(now: DNAInstant, lease: NodeLease.Snapshot) -> Step {
        // Commits the store has answered are seen through first: a failure is retried
        // now, not only once the mailbox runs dry.
        var reportDurable = false
        if limits.reportsCommits, !stopped, case .active = life { reportDurable = true }
        switch commits.advance(now: now, reportDurable: reportDurable) {
        case .none: break
        case .durable(let messages): return .didCommit(messages: messages)
        case .retry(let batch): return .commit(batch)
        }
        if commits.isSettling {
            // No answer is given while an attempt is under way: it may still succeed.
            if commits.hasAttemptInFlight { return .wait(until: nil) }
            return conclude()
        }
        if stopped {
            if commits.isEmpty {
                task = .none
                return .exit(waiters: takeIdleWaiters())
            }
            return .wait(until: retryTime)
        }
        switch life {
        case .activating:
            return .wait(until: nil)
        case .inactive:
            guard !queue.isEmpty else { return idleOrWait(now: now) }
            life = .activating
            return .activate
        case .active(let registration, let generation):
            if commits.initialCommitPending { return .wait(until: retryTime) }
            if let migration {
                // No batch starts while moving: the queue goes to the new owner.
                guard commits.isEmpty, !migrationUnderWay else { return .wait(until: retryTime) }
                if order.changed { return .storeOrder }
                migrationUnderWay = true
                return .migrate(registration, to: migration.target, reply: migration.reply)
            }
            if !queue.isEmpty && commits.count < limits.pipelineDepth {
                if !lease.mayServe(generation: generation, at: now) {
                    return stopServing(registration)
                }
                let (batch, refused) = order.inOrder(takeBatch())
                return .handle(batch, refused: refused)
            }
            if queue.isEmpty && commits.isEmpty && order.changed && (deactivationRequested || order.storeRequested) {
                return .storeOrder
            }
            if queue.isEmpty && commits.isEmpty && deactivationRequested {
                deactivationRequested = false
                life = .inactive
                return .deactivate(release: registration)
            }
            return idleOrWait(now: now)
        }
    }

    private var retryTime: DNAInstant? { commits.retryTime }

    private mutating func idleOrWait(now: DNAInstant) -> Step {
        if queue.isEmpty && commits.isEmpty {
            task = .none
            // Storing the order for a stop is no activity: the stop is asked again.
            if order.storeRequested { order.storeRequested = false } else { lastActivity = now }
            return .exit(waiters: takeIdleWaiters())
        }
        return .wait(until: retryTime)
    }

    /// Messages in the mailbox, not yet taken into a batch.
    package var waitingCount: Int { queue.count }

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
        if commits.isSettling { return !commits.hasAttemptInFlight }
        if commits.hasWork(now: now) { return true }
        if stopped { return commits.isEmpty }
        switch life {
        case .activating: return false
        case .inactive: return !queue.isEmpty || commits.isEmpty
        case .active:
            if commits.initialCommitPending { return false }
            // Moving: nothing to do until every commit is durable, then the hand-over.
            if migration != nil { return commits.isEmpty && !migrationUnderWay }
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
        /// Activating failed: fail `queued` with `error` (casts, whose senders cannot be
        /// told, are counted), wake `waiters`.
        case stop(queued: [Message], error: DNAError, waiters: [Waiter])
    }

    package mutating func activated(_ outcome: ActivationOutcome, now: DNAInstant) -> ActivatedAction {
        switch outcome {
        case .granted(let registration, let generation, let operations):
            life = .active(registration, leaseGeneration: generation)
            commits.restart()
            order.forgetStored()
            guard !operations.isEmpty else { return .none }
            return .commit(
                commits.append(operations, held: [], registration: registration, now: now, timeout: limits.commitTimeout, initial: true))
        case .failed(let error):
            life = .inactive
            let (queued, waiters) = stop()
            return .stop(queued: queued, error: error, waiters: waiters)
        }
    }

    /// The name is owned by another node: the activation stops taking messages and hands
    /// over what it queued (to be forwarded there, in order) — but for what its order says
    /// was overtaken (`refused`): an activation reset after a failed commit keeps the order
    /// it learned, which the store never got, and the owner would handle those after the
    /// later messages this one answered.
    package mutating func stopAndTakeQueue() -> (queued: [Message], refused: [Message], waiters: [Waiter]) {
        life = .inactive
        return stopRefusingOvertaken()
    }

    // MARK: Batches and the output gate

    package enum HandledAction {
        case none
        /// Hand this batch to the store; its answer comes to ``commitCompleted(sequence:result:now:)``.
        case commit(CommitBatch)
        /// Release these replies now.
        case release([Held])
        /// The lease ran out while the batch was handled: fail these replies with `error`
        /// (their messages wrote nothing, so nothing happened).
        case fail([Held], DNAError)
    }

    /// Whether a reply that does not wait for a commit (an immediate one, or one of a batch
    /// that wrote nothing) may go out at `now`: only while the lease the activation serves
    /// under holds, or another node may own the name by now.
    package func mayAnswer(now: DNAInstant, lease: NodeLease.Snapshot) -> Bool {
        guard case .active(_, let generation) = life else { return false }
        return lease.mayServe(generation: generation, at: now)
    }

    /// The error for a reply that may not go out (see ``mayAnswer(now:lease:)``):
    /// `wrote` tells whether its message staged writes, which may still commit.
    package func leaseLostError(wrote: Bool) -> DNAError {
        wrote
            ? DNAError(
                .outcomeUnknown,
                "\(id): the node's lease ran out before the answer could be given; the message's writes may or may not commit")
            : DNAError(.fenced, "\(id): the node's lease ran out before the answer could be given; retry to reach the owner")
    }

    /// The task handled a batch: its writes and the replies it holds behind the gate.
    package mutating func handled(
        operations: [StorageOperation], held: [Held], now: DNAInstant, lease: NodeLease.Snapshot, order: [UInt8]? = nil,
        messages: Int = 0, casts: Int = 0, streams: StreamEffects = .none
    ) -> HandledAction {
        guard case .active(let registration, _) = life else { return .none }
        if operations.isEmpty && streams.isEmpty && order == nil {
            // Released with the last batch in flight: these replies may have seen its writes.
            if commits.holdWithLast(held) { return .none }
            if held.isEmpty { return .none }
            return mayAnswer(now: now, lease: lease) ? .release(held) : .fail(held, leaseLostError(wrote: false))
        }
        let batch = commits.append(
            operations, held: held, registration: registration, now: now, timeout: limits.commitTimeout, order: order, streams: streams)
        commits.describeLast(messages: messages, casts: casts)
        return .commit(batch)
    }

    package mutating func requestDeactivation() { deactivationRequested = true }

    /// The latest message per origin, if it changed since the last call: the runtime
    /// stores it with a batch that writes (`CommitBatch.order`). At most ``maxOrigins``
    /// origins are kept (the ones learned first are dropped).
    package mutating func takeOrderState() -> [(origin: UInt32, sequence: UInt64)]? { order.takeChanged() }

    /// The order state to store with the batch just handled (``handled(operations:held:now:lease:order:messages:casts:streams:)``'s
    /// `order`): with a batch that writes, if it changed; with one that wrote nothing, if
    /// the batch handled an origin this activation had not stored yet — it is then
    /// committed on its own and the batch's replies wait for it (see ``OriginOrder``).
    package mutating func orderToStore(writes: Bool) -> [(origin: UInt32, sequence: UInt64)]? {
        let mustStore = order.storingBeforeAnswering()
        guard writes || mustStore else { return nil }
        return order.takeChanged()
    }

    static var maxOrigins: Int { OriginOrder.maxOrigins }

    /// Hands the order state (``takeOrderState()``, encoded) to the store as a batch with
    /// no writes, after a ``Step/storeOrder``; `nil` if the activation no longer serves.
    package mutating func commitOrder(_ order: [UInt8], now: DNAInstant) -> CommitBatch? {
        guard case .active(let registration, _) = life else { return nil }
        return commits.append([], held: [], registration: registration, now: now, timeout: limits.commitTimeout, order: order)
    }

    /// Latest messages per origin as an earlier activation of the name stored them.
    package mutating func restoreOrder(_ stored: [(origin: UInt32, sequence: UInt64)]) {
        order.restore(stored)
    }

    // MARK: Commits

    package struct CompletionAction {
        /// Replies whose batch is durable.
        package var release: [Held] = []
        /// The task to resume, if it is parked.
        package var resume: Waiter?
    }

    /// The store answered an attempt at the commit of `sequence`.
    package mutating func commitCompleted(
        sequence: Int64, result: Result<Void, StoreError>, now: DNAInstant
    )
        -> CompletionAction
    {
        guard let release = commits.completed(sequence: sequence, result: result) else { return CompletionAction() }
        var action = CompletionAction(release: release)
        if case .parked(let waiter) = task {
            task = .running
            action.resume = waiter
        }
        return action
    }

    /// Every attempt has ended: tell each unfinished batch's callers what is known.
    private mutating func conclude() -> Step {
        let (unsettled, cause, fenced) = commits.conclude()
        let failures = unsettled.map { batch in
            Failure(
                held: batch.held, error: batch.ambiguous ? outcomeUnknown(cause) : settledError(cause, fenced: fenced), casts: batch.casts)
        }
        let registration = self.registration
        deactivationRequested = false
        life = .inactive
        if fenced || stopped {
            let (queued, refused, waiters) = stopRefusingOvertaken()
            return .stop(failures: failures, queued: queued, refused: refused, error: fencedError(cause), waiters: waiters)
        }
        guard let registration else { preconditionFailure("settling without a registration") }
        return .reset(failures: failures, release: registration)
    }

    private func outcomeUnknown(_ cause: StoreError) -> DNAError {
        DNAError(
            .outcomeUnknown,
            "\(id): the store's answer to this batch was lost and no later attempt settled it; it may or may not be committed",
            underlying: cause)
    }

    private func settledError(_ cause: StoreError, fenced: Bool) -> DNAError {
        if fenced { return fencedError(cause) }
        return DNAError(
            .commitFailed,
            cause.isRetryable
                ? "\(id): batch not committed within \(limits.commitTimeout); the actor went back to its last durable state"
                : "\(id): the store refused the batch; the actor went back to its last durable state",
            underlying: cause)
    }

    private func fencedError(_ cause: StoreError) -> DNAError {
        DNAError(.fenced, "\(id) was taken over by a newer activation; nothing of this was committed", underlying: cause)
    }

    /// The node lost its lease: another node may own the name by now, so this activation
    /// answers nothing more, not even reads. What was queued was never handled and fails;
    /// batches already handed to the store are seen through (they may still commit, under
    /// the fence of their epoch), and their callers get what happened.
    private mutating func stopServing(_ registration: Registration) -> Step {
        let failure = DNAError(
            .fenced, "the node has not reached the store within the failure timeout; \(id) stopped here, retry to reach its owner")
        let (queued, refused, waiters) = stopRefusingOvertaken()
        return .stop(failures: [], queued: queued, refused: refused, error: failure, waiters: waiters)
    }

    /// ``stop()``, with the queued messages overtaken by one handled here set apart.
    private mutating func stopRefusingOvertaken() -> (queued: [Message], refused: [Message], waiters: [Waiter]) {
        let (queued, waiters) = stop()
        guard queued.contains(where: { order.overtaken($0) }) else { return (queued, [], waiters) }
        var kept: [Message] = []
        var refused: [Message] = []
        for message in queued {
            if order.overtaken(message) { refused.append(message) } else { kept.append(message) }
        }
        return (kept, refused, waiters)
    }

    private mutating func stop() -> (queued: [Message], waiters: [Waiter]) {
        stopped = true
        let queued = Array(queue)
        queue = []
        return (queued, takeIdleWaiters())
    }

    // MARK: Migration

    package enum MigrationRequestOutcome {
        /// Asked for; the task does it. Resume the parked task if there is one.
        case accepted(resume: Waiter?)
        /// Asked for; no task runs: start one.
        case acceptedStartTask
        /// Not active here (never activated, activating, stopped) or already moving.
        case refused(String)
    }

    /// Asks for the activation to move to `target` once what it handled is durable.
    package mutating func requestMigration(to target: NodeID, reply: MigrationReply) -> MigrationRequestOutcome {
        guard !stopped, case .active = life else { return .refused("\(id) is not active on this node") }
        guard migration == nil else { return .refused("\(id) is already moving") }
        guard !commits.isSettling else { return .refused("\(id) is recovering from a failed commit") }
        migration = Migration(target: target, reply: reply)
        let (start, resume) = runTask()
        return start ? .acceptedStartTask : .accepted(resume: resume)
    }

    /// The store was asked to hand the name over: the activation takes no more messages
    /// (whatever the answer: after a lost one, the name may be the target's); what it
    /// queued goes to the new owner, in order.
    package mutating func migrated() -> (queued: [Message], waiters: [Waiter]) {
        migration = nil
        migrationUnderWay = false
        life = .inactive
        return stop()
    }

    /// A move asked for that can no longer happen: the activation stopped or reset (its
    /// lease ran out, a commit failed) before the hand-over. Its caller is told.
    package mutating func takeAbandonedMigration() -> MigrationReply? {
        guard let migration, !migrationUnderWay else { return nil }
        if case .active = life, !stopped { return nil }
        self.migration = nil
        return migration.reply
    }

    // MARK: Passivation and shutdown

    package enum StopOutcome: Equatable {
        /// Busy, or not idle long enough: it goes on.
        case notIdle
        /// Stopped: give back `registration` (if it was active) and drop the instance.
        case stopped(Registration?)
        /// Idle, but its order state must be stored before the name is given up: the task
        /// was started to do so (start it); ask again once it is idle.
        case storeOrderFirst
    }

    /// Stops the activation if it is idle (no task, nothing queued) since before `cutoff`
    /// (`nil`: idle now, as at shutdown). `hasTimers`: timers keep it active unless
    /// shutting down.
    package mutating func stopIfIdle(since cutoff: DNAInstant?, hasTimers: Bool) -> StopOutcome {
        guard !stopped, case .none = task, queue.isEmpty, cutoff == nil || !hasTimers else { return .notIdle }
        if let cutoff, lastActivity > cutoff { return .notIdle }
        if order.changed, case .active = life {
            order.storeRequested = true
            task = .running
            return .storeOrderFirst
        }
        stopped = true
        let registration = self.registration
        life = .inactive
        return .stopped(registration)
    }

    /// Adds a waiter for the moment the task has nothing left to do; `false`: it is idle now.
    package mutating func waitUntilIdle(_ waiter: Waiter) -> Bool {
        guard isRunning else { return false }
        idleWaiters.append(waiter)
        return true
    }
}

/// Where the caller of a migration hears its outcome (a continuation in the runtime, a
/// counter in the simulation).
package final class MigrationReply: @unchecked Sendable {
    private let completion: (Result<Void, DNAError>) -> Void

    package init(_ completion: @escaping (Result<Void, DNAError>) -> Void) {
        self.completion = completion
    }

    /// Called once.
    package func resume(_ result: Result<Void, DNAError>) { completion(result) }
}

// Synthesised here (the type's file); the actions with errors compare in
// ActivationStateMachine+Equatable.swift.

extension ActivationStateMachine.CompletionAction: Equatable where Held: Equatable, Waiter: Equatable {}

extension ActivationStateMachine.EnqueueOutcome: Equatable where Waiter: Equatable {}

extension ActivationStateMachine.MigrationRequestOutcome: Equatable where Waiter: Equatable {}
