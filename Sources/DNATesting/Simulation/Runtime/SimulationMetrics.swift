import CoreMetrics
import Synchronization

/// The simulation's metrics backend: the counters every node makes, added up by label and
/// dimensions when asked (the process's `MetricsSystem` is one per process, and simulations
/// run side by side). Recorders and timers go nowhere.
final class SimulationMetrics: MetricsFactory {
    private final class Count: CounterHandler {
        let key: String
        let value = Atomic<Int64>(0)

        init(key: String) { self.key = key }

        func increment(by amount: Int64) { value.add(amount, ordering: .relaxed) }
        func reset() { value.store(0, ordering: .relaxed) }
    }

    private let counts = Mutex<[Count]>([])

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        let key = dimensions.isEmpty ? label : label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        let count = Count(key: key)
        counts.withLock { $0.append(count) }
        return count
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        NOOPMetricsHandler.instance
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { NOOPMetricsHandler.instance }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { NOOPMetricsHandler.instance }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    /// Every counter's total over all nodes, by label and dimensions (`label{name=value}`).
    func totals() -> [String: Int] {
        counts.withLock { counts in
            var totals: [String: Int] = [:]
            for count in counts { totals[count.key, default: 0] += Int(count.value.load(ordering: .relaxed)) }
            return totals
        }
    }
}

extension SimulationMetrics: @unchecked Sendable {}
