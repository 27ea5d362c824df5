import DNA
import DNAExamples
import Foundation

/// `dna-bench alarms`: alarms due within one second on three `dna node`
/// processes, once as they are and once with the owner of a third of them killed (SIGKILL)
/// before they are due.
extension BenchRunner {
    func alarms(count: Int, failureTimeout: Double = 5) async throws -> BenchReport {
        guard count >= 10 else { throw BenchFailure("--alarms must be at least 10") }
        let calm = try await alarmRun(count: count, killOwner: false, failureTimeout: failureTimeout)
        let killed = try await alarmRun(count: count, killOwner: true, failureTimeout: failureTimeout)
        var report = BenchReport(scenario: "alarms")
        report.set("alarms", count)
        report.set("fired", calm.fired)
        report.set("missing", calm.missing)
        report.set("p50_lateness_ms", calm.p50)
        report.set("p99_lateness_ms", calm.p99)
        report.set("max_lateness_ms", calm.max)
        report.set("fired_more_than_once", calm.repeated)
        report.set("fired_with_kill", killed.fired)
        report.set("missing_with_kill", killed.missing)
        report.set("p99_lateness_ms_with_kill", killed.p99)
        report.set("max_lateness_ms_with_kill", killed.max)
        report.set("fired_more_than_once_with_kill", killed.repeated)
        report.set("failure_timeout_seconds", failureTimeout)
        report.set("seconds", calm.seconds + killed.seconds)
        return report
    }

    private struct AlarmRun {
        var fired: Int
        var missing: Int
        var p50: Double
        var p99: Double
        var max: Double
        var repeated: Int
        var seconds: Double
    }

    private func alarmRun(count: Int, killOwner: Bool, failureTimeout: Double) async throws -> AlarmRun {
        let started = clock.now
        let store = "sqlite:\(root)/alarms-\(UUID().uuidString).db"
        let nodes = try await (0..<3).asyncMap { _ in
            try await ChildNode.start(store: store, failureTimeout: failureTimeout, arguments: ["--rebalance", "off"])
        }
        defer { for node in nodes { node.terminate() } }
        let clients = try nodes.map { try ClusterClient(cluster: "bench", secret: Self.benchSecret, node: $0.address) }
        let actors = count / 10
        // Due within one second, starting when every alarm is surely stored.
        let firstDue = WallClockTime.now.milliseconds + 4_000
        func dues(_ actor: Int) -> [String: Int64] {
            var alarms: [String: Int64] = [:]
            for index in 0..<10 { alarms["a\(index)"] = firstDue + Int64((actor * 10 + index) * 1000 / count) }
            return alarms
        }
        // Actor i is armed through node i mod 3, which then owns it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    for actor in stride(from: lane, to: actors, by: 16) {
                        try await clients[actor % 3].call(AlarmActor.Arm(alarms: dues(actor)), kind: "alarms", key: "alarm-\(actor)")
                    }
                }
            }
            try await group.waitForAll()
        }
        guard WallClockTime.now.milliseconds < firstDue else { throw BenchFailure("arming the alarms took longer than 4 s") }
        if killOwner { nodes[0].kill() }
        // Until the last is due, plus the failure timeout when an owner was killed, plus 3 s.
        let waitUntil = firstDue + 1_000 + (killOwner ? Int64(failureTimeout * 1000) : 0) + 3_000
        try await Task.sleep(for: .milliseconds(max(0, waitUntil - WallClockTime.now.milliseconds)))
        let reader = clients[1]
        var lateness: [Double] = []
        var repeated = 0
        for actor in 0..<actors {
            let report = try await reader.call(AlarmActor.Report(), kind: "alarms", key: "alarm-\(actor)")
            let due = dues(actor)
            for (name, times) in report.fired {
                guard let first = times.min(), let when = due[name] else { continue }
                lateness.append(Double(first - when))
                if times.count > 1 { repeated += 1 }
            }
        }
        for client in clients { await client.shutdown() }
        lateness.sort()
        return AlarmRun(
            fired: lateness.count, missing: actors * 10 - lateness.count, p50: percentile(lateness, 0.5),
            p99: percentile(lateness, 0.99), max: lateness.last ?? 0, repeated: repeated, seconds: seconds(clock.now - started))
    }
}
