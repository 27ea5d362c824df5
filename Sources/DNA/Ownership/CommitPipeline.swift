import DNATransport
import DequeModule

/// An activation's batches handed to the store, oldest first: their attempts, retries
/// within their deadline, and how the pipeline settles when one cannot commit. A part of
/// ``ActivationStateMachine`` with its own rules:
///
/// - batches apply in sequence: one durable makes every earlier one durable;
/// - the oldest failed batch is retried (5 ms doubling, at most 1 s) while its error is
///   retryable and its deadline has not passed; otherwise the pipeline *settles*: no new
///   attempt, and once no attempt is under way every batch not durable is failed — with
///   `outcomeUnknown` if an attempt's answer was lost, else as certainly not applied.
///
/// Pure: instants in, decisions out.
struct CommitPipeline<Held> {
    struct Commit {
        enum Status {
            /// An attempt is under way.
            case inFlight
            case durable
            /// The last attempt failed; what to do is decided in ``advance(now:reportDurable:)``.
            case failed(StoreError)
            /// Waiting to be attempted again at the given time.
            case retrying(at: DNAInstant)
        }

        var batch: CommitBatch
        var held: [Held]
        var status: Status
        /// The messages handled in the batch.
        var messages = 0
        /// Casts among them: lost with the batch if it certainly did not commit.
        var casts = 0
        /// The time its callers' wait ends: no attempt is started or runs past it.
        var deadline: DNAInstant
        /// An attempt ended with an unknown outcome: it may have been applied.
        var ambiguous = false

        var isDurable: Bool {
            if case .durable = status { return true }
            return false
        }

        var isInFlight: Bool {
            if case .inFlight = status { return true }
            return false
        }
    }

    /// Why the pipeline stopped retrying: it concludes once no attempt is under way.
    enum Settling {
        case none
        /// The store says the name is no longer ours.
        case fenced(StoreError)
        /// The oldest batch could not be committed before its deadline, or was refused.
        case gaveUp(StoreError)
    }

    static var retryBackoff: Backoff { Backoff(first: .milliseconds(5), maximum: .seconds(1)) }

    private(set) var commits = Deque<Commit>()
    private var lastSequence: Int64 = 0
    /// Writes of the initialiser are durable before the first message is handled.
    private(set) var initialCommitPending = false
    private(set) var settling = Settling.none
    /// Attempts of the oldest commit failed in a row.
    private var retryFailures = 0

    var isEmpty: Bool { commits.isEmpty }
    var count: Int { commits.count }
    var isSettling: Bool {
        if case .none = settling { return false }
        return true
    }
    var hasAttemptInFlight: Bool { commits.contains(where: \.isInFlight) }

    /// When the oldest batch is attempted again, if it waits for that.
    var retryTime: DNAInstant? {
        guard let oldest = commits.first, case .retrying(let at) = oldest.status else { return nil }
        return at
    }

    /// A new activation: sequences start over.
    mutating func restart() { lastSequence = 0 }

    /// A batch handed to the store now, its callers waiting at most `timeout`.
    mutating func append(
        _ operations: [StorageOperation], held: [Held], registration: Registration, now: DNAInstant, timeout: Duration,
        order: [UInt8]? = nil, streams: StreamEffects = .none, initial: Bool = false
    ) -> CommitBatch {
        lastSequence += 1
        var batch = CommitBatch(registration: registration, sequence: lastSequence, operations: operations, order: order, streams: streams)
        batch.timeout = timeout
        commits.append(Commit(batch: batch, held: held, status: .inFlight, deadline: now + timeout))
        if initial { initialCommitPending = true }
        return batch
    }

    /// Counts the last batch's messages and casts.
    mutating func describeLast(messages: Int, casts: Int) {
        commits[commits.count - 1].messages = messages
        commits[commits.count - 1].casts = casts
    }

    /// Replies of a batch that wrote nothing, held with the last batch not durable yet (they
    /// may have seen its writes); `false` if every batch is durable.
    mutating func holdWithLast(_ held: [Held]) -> Bool {
        guard let last = commits.last, !last.isDurable else { return false }
        commits[commits.count - 1].held.append(contentsOf: held)
        return true
    }

    /// The store answered an attempt at the batch `sequence`: the replies that may go out
    /// now; `nil` if no attempt of that batch was under way (a stale answer).
    mutating func completed(sequence: Int64, result: Result<Void, StoreError>) -> [Held]? {
        guard let index = commits.firstIndex(where: { $0.batch.sequence == sequence }), commits[index].isInFlight else { return nil }
        var release: [Held] = []
        switch result {
        case .success:
            // The store applies an activation's batches strictly in sequence: every earlier
            // batch is durable too, whatever order the answers arrive in.
            for earlier in 0...index {
                commits[earlier].status = .durable
                release.append(contentsOf: commits[earlier].held)
                commits[earlier].held = []
            }
            retryFailures = 0
            if commits[0].batch.sequence == 1 { initialCommitPending = false }
        case .failure(let error):
            if error.code == .outcomeUnknown { commits[index].ambiguous = true }
            commits[index].status = .failed(error)
        }
        return release
    }

    enum Advance: Equatable {
        /// Nothing to do now.
        case none
        /// A durable batch of this many messages left the pipeline.
        case durable(messages: Int)
        /// Attempt the oldest batch again.
        case retry(CommitBatch)
    }

    /// Sees answered batches through: removes the durable ones (telling of the first when
    /// `reportDurable`), starts a retry whose time came, and decides on a failure.
    mutating func advance(now: DNAInstant, reportDurable: Bool) -> Advance {
        while let oldest = commits.first {
            switch oldest.status {
            case .durable:
                commits.removeFirst()
                // An idle activation keeps no storage for commits (a slot is large).
                if commits.isEmpty { commits = Deque() }
                if reportDurable, oldest.messages > 0, !isSettling { return .durable(messages: oldest.messages) }
                continue
            case .inFlight:
                return .none
            case .retrying(let at):
                if !isSettling, now >= at {
                    commits[0].status = .inFlight
                    commits[0].batch.timeout = oldest.deadline - now
                    return .retry(commits[0].batch)
                }
                return .none
            case .failed(let error):
                if !isSettling { decide(error, now: now) }
                return .none
            }
        }
        return .none
    }

    /// Whether ``advance(now:reportDurable:)`` would do something (or the pipeline could conclude).
    func hasWork(now: DNAInstant) -> Bool {
        if isSettling { return !hasAttemptInFlight }
        guard let oldest = commits.first else { return false }
        switch oldest.status {
        case .inFlight: return false
        case .durable, .failed: return true
        case .retrying(let at): return now >= at
        }
    }

    /// The oldest commit's attempt failed with `error`: retry it before its deadline, or
    /// settle (then the pipeline concludes once nothing is under way).
    private mutating func decide(_ error: StoreError, now: DNAInstant) {
        if error.code == .fenced {
            settling = .fenced(error)
            return
        }
        let deadline = commits[0].deadline
        if error.isRetryable && now < deadline {
            retryFailures += 1
            let at = min(now + Self.retryBackoff.delay(afterFailures: retryFailures), deadline)
            commits[0].status = .retrying(at: at)
            return
        }
        settling = .gaveUp(error)
    }

    /// A batch not durable when the pipeline concluded: its callers, whether an attempt's
    /// answer was lost, its casts.
    struct Unsettled {
        var held: [Held]
        var ambiguous: Bool
        var casts: Int
    }

    /// Every attempt has ended while settling: the batches not durable, why, and whether the
    /// name was taken over; the pipeline starts empty.
    mutating func conclude() -> (unsettled: [Unsettled], cause: StoreError, fenced: Bool) {
        let fenced: Bool
        let cause: StoreError
        switch settling {
        case .none: preconditionFailure("conclude() while not settling")
        case .fenced(let error):
            fenced = true
            cause = error
        case .gaveUp(let error):
            fenced = false
            cause = error
        }
        let unsettled = commits.filter { !$0.isDurable }.map { Unsettled(held: $0.held, ambiguous: $0.ambiguous, casts: $0.casts) }
        commits.removeAll()
        settling = .none
        retryFailures = 0
        initialCommitPending = false
        return (unsettled, cause, fenced)
    }
}
