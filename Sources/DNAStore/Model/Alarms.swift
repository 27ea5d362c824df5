public import Foundation

/// An actor's durable alarm as the store keeps it: a row of the runtime module
/// ``ModuleRow/alarmModule`` (key: the alarm's name, UTF-8), whose value starts with the
/// due time so the stores can index it: 8 bytes due (ms since 1970, big-endian), 8 bytes
/// repeat interval (ms; 0 for once), 4 bytes attempt (failed handler runs since it was
/// last handled).
public struct AlarmRecord: Sendable, Equatable {
    /// When it is due: milliseconds since 1970.
    public var due: Int64
    /// The repeat interval in milliseconds; 0 for an alarm that fires once.
    public var interval: Int64
    /// Failed handler runs since the alarm was last handled.
    public var attempt: Int32

    /// An alarm due at `due` (ms since 1970), repeating every `interval` ms (0: once).
    public init(due: Int64, interval: Int64 = 0, attempt: Int32 = 0) {
        self.due = due
        self.interval = interval
        self.attempt = attempt
    }

    /// The 20 bytes stored as the row's value (see above).
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20)
        withUnsafeBytes(of: due.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: interval.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: attempt.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// `nil` for bytes that are not an alarm.
    public init?(encoded bytes: [UInt8]) {
        guard bytes.count == 20 else { return nil }
        func integer<T: FixedWidthInteger>(_ range: Range<Int>, as: T.Type) -> T {
            bytes[range].reduce(T(0)) { $0 << 8 | T($1) }
        }
        due = integer(0..<8, as: Int64.self)
        interval = integer(8..<16, as: Int64.self)
        attempt = integer(16..<20, as: Int32.self)
    }

    /// The first 8 bytes of an encoded alarm whose due time is `milliseconds`: what the
    /// stores compare against their index (signed values sort as bytes only when positive;
    /// due times are after 1970).
    public static func dueKey(_ milliseconds: Int64) -> [UInt8] {
        withUnsafeBytes(of: max(0, milliseconds).bigEndian) { Array($0) }
    }
}

/// An alarm that is due, as ``AlarmStore/dueAlarms(before:limit:)`` finds it.
public struct DueAlarm: Sendable, Equatable {
    /// The actor whose alarm it is.
    public var actor: ActorID
    /// The alarm's name.
    public var name: String
    /// Milliseconds since 1970.
    public var due: Int64
    /// The node that owns the actor's name, if it is alive; `nil` for a name without a live owner.
    public var owner: NodeID?

    /// An alarm as an engine found it.
    public init(actor: ActorID, name: String, due: Int64, owner: NodeID?) {
        self.actor = actor
        self.name = name
        self.due = due
        self.owner = owner
    }
}

/// A time on the wall clock, in milliseconds since 1970 (UTC): what alarms are set to,
/// since they outlive the process and the machine that set them. Nodes' clocks should
/// agree (NTP); an alarm fires when the node that owns the actor reads its time as due.
public struct WallClockTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970 (UTC).
    public var milliseconds: Int64

    /// The time `milliseconds` after 1970 (UTC).
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// The time of `date`, rounded to the millisecond.
    public init(_ date: Date) { milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    /// The time as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// The wall clock now.
    public static var now: WallClockTime { WallClockTime(Date()) }

    /// The time `duration` later, in whole milliseconds.
    public static func + (time: WallClockTime, duration: Duration) -> WallClockTime {
        WallClockTime(milliseconds: time.milliseconds + duration.milliseconds)
    }

    /// The time from `earlier` to `later`; negative if `later` is before `earlier`.
    public static func - (later: WallClockTime, earlier: WallClockTime) -> Duration {
        .milliseconds(later.milliseconds - earlier.milliseconds)
    }

    /// Earlier first.
    public static func < (a: WallClockTime, b: WallClockTime) -> Bool { a.milliseconds < b.milliseconds }

    /// The time as `Date` prints it (UTC).
    public var description: String { "\(date)" }
}
