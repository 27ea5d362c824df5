import Foundation

/// The result of one benchmark scenario.
struct BenchReport {
    var scenario: String
    var fields: [(String, Any)] = []

    mutating func set(_ key: String, _ value: Any) { fields.append((key, value)) }

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
