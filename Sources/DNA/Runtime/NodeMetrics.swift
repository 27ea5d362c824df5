import Metrics

/// The node's metrics (swift-metrics; no-ops until a backend is bootstrapped).
struct NodeMetrics: Sendable {
    let messages = Counter(label: "dna_messages_total")
    let batches = Counter(label: "dna_batches_total")
    let commitFailures = Counter(label: "dna_commit_failures_total")
    let activations = Counter(label: "dna_activations_total")
    let passivations = Counter(label: "dna_passivations_total")
    /// Activations handed over to another node.
    let migrations = Counter(label: "dna_migrations_total")
    /// Activations this node moved away in rebalancing rounds.
    let rebalanceMoves = Counter(label: "dna_rebalance_moves_total")
    let activationDuration = Timer(label: "dna_activation_duration")
    /// Activations on the node now (set with each heartbeat).
    let activationsHosted = Gauge(label: "dna_activations")
    /// Messages per batch.
    let batchMessages = Recorder(label: "dna_batch_messages")
    /// Messages still waiting in the mailbox when a batch has been taken.
    let mailboxDepth = Recorder(label: "dna_mailbox_depth")
    /// From a batch's hand-over to the store until it is durable (or failed).
    let commitDuration = Timer(label: "dna_commit_duration")
    /// Alarm handlers that ran to the end.
    let alarmsFired = Counter(label: "dna_alarms_fired_total")
    /// Alarm handlers that threw (each is retried with back-off).
    let alarmRetries = Counter(label: "dna_alarm_retries_total")
    /// How late an alarm's handler started after its due time.
    let alarmLateness = Timer(label: "dna_alarm_lateness")
    /// Records consumed by stage consumers (committed with their checkpoints).
    let stageRecords = Counter(label: "dna_stage_records_total")
    /// Stage handlers that threw (the records are retried).
    let stageFailures = Counter(label: "dna_stage_failures_total")
    /// Stage partitions parked after their handler kept failing.
    let stageParked = Counter(label: "dna_stage_parked_total")
    /// Records a stage never read: deleted by the retention of a stream that drops unread records.
    let stageRecordsDropped = Counter(label: "dna_stage_records_dropped_total")
    /// Casts lost where nobody could be told (`cast` throws whatever is known when it is
    /// called), by reason: `link_failed` (queued on a link that failed), `refused` (the
    /// receiving node refused it), `out_of_order` (overtaken on another route),
    /// `activation_failed` (queued for an activation that could not start),
    /// `undeliverable` (never handled by an activation that stopped, and not deliverable
    /// afresh: the node stops, or the owner cannot be reached), `not_committed` (handled in
    /// a batch that certainly did not commit: fenced, or refused until its deadline).
    let castsDroppedLinkFailed = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "link_failed")])
    let castsDroppedRefused = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "refused")])
    let castsDroppedActivationFailed = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "activation_failed")])
    let castsDroppedUndeliverable = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "undeliverable")])
    let castsDroppedNotCommitted = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "not_committed")])
    /// Outbound links that failed (connect, handshake or a broken connection).
    let linkFailures = Counter(label: "dna_link_errors_total", dimensions: [("direction", "outbound")])
    let castsDroppedOutOfOrder = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "out_of_order")])
}
