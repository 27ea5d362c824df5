import Metrics

/// The node's metrics (swift-metrics; no-ops until a backend is bootstrapped).
struct NodeMetrics: Sendable {
    let messages = Counter(label: "dna_messages_total")
    let batches = Counter(label: "dna_batches_total")
    let commitFailures = Counter(label: "dna_commit_failures_total")
    let activations = Counter(label: "dna_activations_total")
    let passivations = Counter(label: "dna_passivations_total")
    let activationDuration = Timer(label: "dna_activation_duration")
}
