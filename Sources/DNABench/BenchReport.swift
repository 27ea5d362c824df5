import Foundation

/// The result of one benchmark scenario.
struct BenchReport {
    var scenario: String
    var fields: [(String, Any)] = []

    mutating func set(_ key: String, _ value: Any) { fields.append((key, value)) }

    func number(_ key: String) -> Double? { fields.first { $0.0 == key }?.1 as? Double }

    /// The headline figure of a scenario: what the median is taken of.
    var headline: String {
        for key in ["ratio", "p50_us", "activations_per_second", "bytes_per_activation"] where number(key) != nil { return key }
        return "seconds"
    }

    /// The run with the median headline figure, with the spread of all runs added.
    static func median(of runs: [BenchReport]) -> BenchReport {
        guard runs.count > 1 else { return runs[0] }
        let key = runs[0].headline
        let sorted = runs.sorted { ($0.number(key) ?? 0) < ($1.number(key) ?? 0) }
        var report = sorted[sorted.count / 2]
        report.set("runs", runs.count)
        report.set("\(key)_min", sorted.first?.number(key) ?? 0)
        report.set("\(key)_max", sorted.last?.number(key) ?? 0)
        return report
    }

    func json() -> String {
        var object: [String: Any] = ["scenario": scenario]
        for (key, value) in fields { object[key] = value }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    func text() -> String {
        var lines = ["scenario \(scenario)"]
        for (key, value) in fields {
            if let number = value as? Double {
                lines.append("  \(key): \(String(format: number < 10 ? "%.3f" : "%.0f", number))")
            } else {
                lines.append("  \(key): \(value)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Percentiles of a sample, in the sample's unit.
func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * fraction).rounded(.down)))
    return sorted[index]
}

func seconds(_ duration: Duration) -> Double {
    let (s, atto) = duration.components
    return Double(s) + Double(atto) / 1e18
}
