public import DNAStore
import Synchronization

/// A clock that moves only when a test moves it: give it to a node
/// (`Node.Configuration.clock`) and to an ``InMemoryStore``, then ``advance(by:)`` to run
/// heartbeats, leases, retries and passivation deterministically, without sleeping.
///
/// ```swift
/// let clock = TestClock()
/// var configuration = Node.Configuration(store: .custom(InMemoryStore(clock: clock)))
/// configuration.clock = clock
/// …
/// clock.advance(by: .seconds(5))     // the lease runs out; sleepers due by then wake up
/// ```
public final class TestClock: DNAClock {
    private struct Sleeper {
        var deadline: DNAInstant
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = DNAInstant.zero
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        var sleeperWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    /// A clock at `DNAInstant.zero`.
    public init() {}

    /// The time: `DNAInstant.zero` plus what the test advanced.
    public var now: DNAInstant { state.withLock { $0.now } }

    /// The date it starts at: 2026-01-01T00:00:00Z.
    public static let startDate = WallClockTime(milliseconds: 1_767_225_600_000)

    /// The date: ``startDate`` plus the time advanced, so alarms and the age of stream
    /// records follow the test's time too.
    public var wallNow: WallClockTime { Self.startDate + .nanoseconds(now.nanoseconds) }

    /// How many tasks are sleeping on this clock now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Returns once an ``advance(by:)`` reaches `deadline` (at once if it is reached); throws
    /// `CancellationError` if the task is cancelled first.
    public func sleep(until deadline: DNAInstant) async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resume, waiters) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if deadline <= state.now { return (true, []) }
                    if Task.isCancelled { return (true, []) }
                    state.sleepers.append(Sleeper(deadline: deadline, id: id, continuation: continuation))
                    return (false, Self.takeSatisfied(&state))
                }
                for waiter in waiters { waiter.resume() }
                if resume {
                    if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { continuation.resume() }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the time forward by `duration` and wakes every sleeper due by then, earliest
    /// first.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now + duration
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.sorted { ($0.deadline, $0.id) < ($1.deadline, $1.id) }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Returns once at least `count` tasks sleep on this clock (for example a node's
    /// heartbeat and passivation loops), so that an ``advance(by:)`` that follows reaches them.
    public func waitForSleepers(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                if state.sleepers.count >= count { return true }
                state.sleeperWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private static func takeSatisfied(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let count = state.sleepers.count
        let ready = state.sleeperWaiters.filter { $0.count <= count }.map(\.continuation)
        state.sleeperWaiters.removeAll { $0.count <= count }
        return ready
    }
}
