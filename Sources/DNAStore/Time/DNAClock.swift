/// A moment on a ``DNAClock``: nanoseconds since the clock's origin. Monotonic: it never
/// goes back, and says nothing about wall-clock time (nodes never compare theirs).
public struct DNAInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: Int64

    /// The moment `nanoseconds` after the clock's origin.
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// The clock's origin.
    public static let zero = DNAInstant(nanoseconds: 0)

    /// Earlier first.
    public static func < (lhs: DNAInstant, rhs: DNAInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The moment `rhs` after `lhs`.
    public static func + (lhs: DNAInstant, rhs: Duration) -> DNAInstant {
        DNAInstant(nanoseconds: lhs.nanoseconds &+ rhs.wholeNanoseconds)
    }

    /// The moment `rhs` before `lhs`.
    public static func - (lhs: DNAInstant, rhs: Duration) -> DNAInstant {
        DNAInstant(nanoseconds: lhs.nanoseconds &- rhs.wholeNanoseconds)
    }

    /// The time from `rhs` to `lhs`.
    public static func - (lhs: DNAInstant, rhs: DNAInstant) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    /// Seconds since the origin, as a decimal (`1.5s`).
    public var description: String { "\(Double(nanoseconds) / 1e9)s" }
}

/// Where the runtime reads the time and waits. Every decision that depends on time (the
/// node's lease, commit retries and deadlines, idle passivation, heartbeats) reads it from
/// the node's clock, so tests can run them on a test clock (`DNATesting.TestClock`) and
/// the simulation on simulated time.
public protocol DNAClock: Sendable {
    /// The time now.
    var now: DNAInstant { get }
    /// Suspends until `deadline`; throws `CancellationError` if the task is cancelled first.
    func sleep(until deadline: DNAInstant) async throws
    /// The date now, for what is kept as a date (alarms, the age of stream records).
    /// Default: the system's ``WallClockTime/now``.
    var wallNow: WallClockTime { get }
}

extension DNAClock {
    /// The system's wall clock, ``WallClockTime/now``.
    public var wallNow: WallClockTime { .now }
}

extension DNAClock {
    /// Suspends for `duration`; throws `CancellationError` if the task is cancelled first.
    public func sleep(for duration: Duration) async throws {
        try await sleep(until: now + duration)
    }
}

/// The real clock: `ContinuousClock` (monotonic, counts time asleep), from the moment the
/// process first read it.
public struct SystemClock: DNAClock {
    private static let origin = ContinuousClock.now

    /// The real clock (every instance reads the same time).
    public init() {}

    /// The time since the process first read the clock.
    public var now: DNAInstant {
        DNAInstant(nanoseconds: (ContinuousClock.now - Self.origin).wholeNanoseconds)
    }

    /// Suspends until `deadline`; throws `CancellationError` if the task is cancelled first.
    public func sleep(until deadline: DNAInstant) async throws {
        try await ContinuousClock().sleep(until: Self.origin + .nanoseconds(deadline.nanoseconds))
    }
}

extension Duration {
    /// This duration in whole nanoseconds (saturating).
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product &+ attoseconds / 1_000_000_000
    }
}
