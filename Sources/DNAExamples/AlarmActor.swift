package import DNA

/// An example of durable alarms: each alarm it is given records when it went off.
/// `dna-bench alarms` and the alarm tests drive it through `dna node`.
package final class AlarmActor: DurableActor {
    package static let kind: ActorKind = "alarms"

    /// Sets alarms: name → due time (ms since 1970); answered once stored.
    package struct Arm: ActorRequest {
        package typealias Response = Void
        package var alarms: [String: Int64]
        package init(alarms: [String: Int64]) { self.alarms = alarms }
    }

    /// When each alarm went off (ms since 1970; more than one time if a node failed
    /// mid-handler and it ran again), and the alarms still set.
    package struct Report: ActorRequest {
        package typealias Response = AlarmReport
        package init() {}
    }

    package struct AlarmReport: Codable, Sendable, Equatable {
        package var fired: [String: [Int64]]
        package var pending: [String]
    }

    let fired: KV<String, [Int64]>

    package init(context: ActorContext) async throws {
        fired = try context.kv("fired")
    }

    package static func handlers(_ h: inout Handlers<AlarmActor>) {
        h.on(Arm.self) { _, arm, context in
            for (name, due) in arm.alarms { try context.setAlarm(name, at: WallClockTime(milliseconds: due)) }
        }
        h.on(Report.self) { actor, _, context in
            var fired: [String: [Int64]] = [:]
            for (name, times) in try actor.fired.list(limit: 1000) { fired[name] = times }
            return AlarmReport(fired: fired, pending: context.alarms.map(\.name))
        }
    }

    package func alarm(_ name: String, context: ActorContext) async throws {
        try fired.write((fired.read(name) ?? []) + [WallClockTime.now.milliseconds], for: name)
    }
}
