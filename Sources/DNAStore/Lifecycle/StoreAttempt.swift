import Synchronization

/// One try of a store operation that waits for a connection under a deadline: it either
/// starts (its statements may be sent) or is abandoned at the deadline (nothing is sent,
/// and the caller is told the operation certainly did not happen). Exactly one of the two
/// wins, whatever the timing of the grant and the deadline — so a caller told
/// ``StoreError/Code/unavailable`` is never wrong.
///
/// PostgreSQL's pooled operations use it; the runtime simulation races it in the same way
/// while its store is slow, so the rule is checked there.
package final class StoreAttempt: Sendable {
    private static let pending: UInt8 = 0
    private static let started: UInt8 = 1
    private static let abandoned: UInt8 = 2

    private let state = Atomic<UInt8>(StoreAttempt.pending)

    package init() {}

    /// When the connection is granted, before anything is sent: `false` if the attempt was
    /// abandoned (then nothing may be sent).
    package func start() -> Bool {
        state.compareExchange(expected: Self.pending, desired: Self.started, ordering: .acquiringAndReleasing).exchanged
    }

    /// At a deadline: `true` if nothing was or will be sent (the attempt is abandoned).
    package func abandon() -> Bool {
        let (exchanged, original) = state.compareExchange(expected: Self.pending, desired: Self.abandoned, ordering: .acquiringAndReleasing)
        return exchanged || original == Self.abandoned
    }

    /// Whether the statements may have been sent.
    package var hasStarted: Bool { state.load(ordering: .acquiring) == Self.started }
}
