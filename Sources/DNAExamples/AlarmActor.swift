import DNA

/// An example of durable alarms: each alarm it is given records when it went off. `dna
/// bench --scenario alarms` and the alarm tests drive it through `dna node`.
public final class AlarmActor: DurableActor {
    public static let kind: ActorKind = "alarms"

    /// Sets alarms: name → due time (ms since 1970); answered once stored.
    public struct Arm: ActorRequest {
        public typealias Response = Void
        public var alarms: [String: Int64]
        public init(alarms: [String: Int64]) { self.alarms = alarms }
    }

    /// When each alarm went off (ms since 1970; more than one time if a node failed
    /// mid-handler and it ran again), and the alarms still set.
    public struct Report: ActorRequest {
        public typealias Response = AlarmReport
        public init() {}
    }

    public struct AlarmReport: Codable, Sendable, Equatable {
        public var fired: [String: [Int64]]
        public var pending: [String]
    }

    let fired: KV<String, [Int64]>

    public init(context: ActorContext) async throws {
        fired = try context.kv("fired")
    }

    public static func handlers(_ h: inout Handlers<AlarmActor>) {
        h.on(Arm.self) { _, arm, context in
            for (name, due) in arm.alarms { try context.setAlarm(name, at: WallClockTime(milliseconds: due)) }
        }
        h.on(Report.self) { actor, _, context in
            var fired: [String: [Int64]] = [:]
            for (name, times) in try actor.fired.list(limit: 1000) { fired[name] = times }
            return AlarmReport(fired: fired, pending: context.alarms.map(\.name))
        }
    }

    public func alarm(_ name: String, context: ActorContext) async throws {
        try fired.write((fired.read(name) ?? []) + [WallClockTime.now.milliseconds], for: name)
    }
}
