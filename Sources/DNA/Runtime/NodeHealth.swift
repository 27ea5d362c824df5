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
        let life = lifeSnapshot
        var reasons: [String] = []
        var live = true
        switch life.phase {
        case .created: reasons.append("not started")
        case .starting: reasons.append("starting: opening the store and joining the cluster")
        case .running, .draining, .left:
            if !holdsLease { reasons.append("its heartbeats have not reached the store within the failure timeout") }
            if life.hasLeft {
                reasons.append("left the cluster")
            } else if life.drained {
                reasons.append("draining")
            }
        case .stopping: reasons.append("stopping")
        case .failed:
            live = false
            reasons.append("failed to start: \(startFailure.map { "\($0)" } ?? "unknown error")")
        case .stopped:
            live = false
            reasons.append("stopped")
        }
        return NodeHealth(live: live, ready: reasons.isEmpty, reasons: reasons)
    }
}
