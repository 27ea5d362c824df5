/// What a node's probes report (`/health/live` and `/health/ready` of the `DNAPrometheus`
/// endpoint, or your own).
public struct NodeHealth: Sendable, Equatable {
    /// The node is starting, running or stopping in order: restarting it would not help.
    /// `false` once it failed to start or stopped.
    public var live: Bool
    /// The node takes traffic: it joined the cluster, holds its lease (its heartbeats reach
    /// the store) and is not draining or leaving.
    public var ready: Bool
    /// Why the node is not ready (or not live), for people reading the probe.
    public var reasons: [String]
}

extension Node {
    /// The node's health now.
    public var health: NodeHealth {
        let phase = life.withLock { $0.phase }
        var reasons: [String] = []
        var live = true
        switch phase {
        case .created: reasons.append("not started")
        case .starting: reasons.append("starting: opening the store and joining the cluster")
        case .running: break
        case .stopping: reasons.append("stopping")
        case .failed(let error):
            live = false
            reasons.append("failed to start: \(error)")
        case .stopped:
            live = false
            reasons.append("stopped")
        }
        if case .running = phase {
            if !holdsLease { reasons.append("its heartbeats have not reached the store within the failure timeout") }
            if hasLeft.load(ordering: .relaxed) {
                reasons.append("left the cluster")
            } else if draining.load(ordering: .relaxed) {
                reasons.append("draining")
            }
        }
        return NodeHealth(live: live, ready: reasons.isEmpty, reasons: reasons)
    }
}
