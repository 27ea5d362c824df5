import DNATransport

/// What a stage's consumer does next, for stream stages and source stages alike, over
/// their position (a stream's next sequence, a source's last position read). Pure: the
/// driver (`StageConsumer`, `SourceConsumer`) reads and processes, tells the machine what
/// happened and when, and does what it answers. The rules it keeps in one place: a retry
/// waits out its back-off whatever wakes the consumer; a partition is read only once its
/// parents are finished (when the stage waits for them); an empty open partition is polled
/// less and less often, then left until a wake; a handler that keeps failing parks it.
struct StageConsumerMachine<Position: Sendable & Equatable>: Sendable {
    enum Phase: Equatable, Sendable {
        /// Not started in this activation: its parents and the store's park not checked yet.
        case idle
        case reading
        /// Closed and read to its end.
        case finished
    }

    let policy: StageFailurePolicy
    private(set) var phase: Phase = .idle
    /// Where the consumer is: `nil` until it started (its checkpoint, or the partition's start).
    private(set) var position: Position?
    /// Failed attempts at the current batch.
    private(set) var failures = 0
    /// After a failed batch: no attempt before this instant.
    private(set) var retryNotBefore: DNAInstant?
    private(set) var emptyPolls = 0
    /// Why the partition is parked; `nil` while it runs.
    private(set) var parked: String?

    init(policy: StageFailurePolicy, position: Position? = nil, finished: Bool = false, parked: String? = nil) {
        self.policy = policy
        self.position = position
        self.parked = parked
        if finished { phase = .finished }
    }

    /// Polls of an empty partition before the consumer rests (its leader wakes it when
    /// records come), and the longest wait between two.
    static var maxEmptyPolls: Int { 40 }
    static var pollBackoff: Backoff { Backoff(first: .milliseconds(5), maximum: .milliseconds(250)) }
    /// How long a consumer waits before it looks again at parents not finished, a park in
    /// the store, or a source it could not read.
    static var recheck: Duration { .seconds(1) }

    enum PullAction: Equatable, Sendable {
        /// Finished: nothing more to read (the activation may go).
        case finished
        /// Try again after this long (a back-off, a park); any pending wake is replaced.
        case wait(Duration)
        /// Parked: look whether it was resumed (a stream stage asks the store; a source
        /// stage waits for its resume message: ``parkedUntilResumed``).
        case checkPark
        /// Not started: check the parents (``parentsUnfinished()``) and the store, then ``started(at:)``.
        case start
        /// Read the next records from the position.
        case read(from: Position)
    }

    /// A wake: the consumer's own, its leader's, an append's, a parent's.
    mutating func pull(now: DNAInstant) -> PullAction {
        if phase == .finished { return .finished }
        // A wake during a back-off leaves the retry at its time.
        if let due = retryNotBefore, now < due { return .wait(due - now) }
        if parked != nil { return .checkPark }
        guard phase == .reading, let position else { return .start }
        return .read(from: position)
    }

    /// The store (or the partition's checkpoint) says the partition is parked.
    mutating func parkedUntilResumed(_ reason: String) -> Duration {
        parked = reason
        return Self.recheck
    }

    /// The partition runs again: failures and back-off start over.
    mutating func resumed() {
        parked = nil
        failures = 0
        retryNotBefore = nil
    }

    /// Its parents are not finished: how long before it looks again (their consumers wake
    /// it when they finish; this is the fallback).
    func parentsUnfinished() -> Duration { Self.recheck }

    /// Its parents are finished (or it does not wait for them): it reads from its position,
    /// or from `start` if it has none yet (its registered checkpoint, the partition's start).
    mutating func started(at start: Position) -> Position {
        let from = position ?? start
        phase = .reading
        position = from
        return from
    }

    /// The partition is recorded finished at `position` (this consumer read it to its end,
    /// or found so when a child asked).
    mutating func finish(at position: Position) {
        phase = .finished
        self.position = position
    }

    enum EmptyAction: Equatable, Sendable {
        /// Closed and read to the end: record it, then ``finish(at:)``, wake the children,
        /// let the activation go.
        case finish(at: Position)
        case poll(after: Duration)
        /// Polled long enough: wait for a wake.
        case rest
    }

    /// A read found nothing after the position.
    mutating func readNothing(partitionClosed: Bool) -> EmptyAction {
        guard let position else { return .rest }
        if partitionClosed { return .finish(at: position) }
        emptyPolls += 1
        guard emptyPolls <= Self.maxEmptyPolls else { return .rest }
        return .poll(after: Self.pollBackoff.delay(afterFailures: emptyPolls))
    }

    /// A read found records: they go to the handler.
    mutating func readRecords() { emptyPolls = 0 }

    /// Records before `position` are gone (retention of a stream that drops unread records):
    /// the consumer moves on to them.
    mutating func skipped(to position: Position) { self.position = position }

    /// The handler's batch went through up to `position` (it commits with its checkpoint).
    mutating func processed(through position: Position) {
        self.position = position
        failures = 0
        retryNotBefore = nil
    }

    enum FailureAction: Equatable, Sendable {
        /// Try the same records again after this long.
        case retry(after: Duration)
        /// Failed ``StageFailurePolicy/attempts`` times: park the partition with this reason.
        case park(reason: String)
    }

    /// The handler threw on records described by `what` (for the park's reason).
    mutating func processFailed(_ error: String, what: String, now: DNAInstant) -> FailureAction {
        failures += 1
        guard failures >= policy.attempts else {
            let wait = policy.backOff(after: failures)
            retryNotBefore = now + wait
            return .retry(after: wait)
        }
        let reason = String("\(what) failed \(failures) times: \(error)".prefix(500))
        parked = reason
        // Until the park commits, the store shows none: a wake before then must not be
        // taken for a resume.
        retryNotBefore = now + Self.recheck
        return .park(reason: reason)
    }
}
