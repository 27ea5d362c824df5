import Metrics

/// The node's metrics (swift-metrics; no-ops until a backend is bootstrapped).
struct NodeMetrics: Sendable {
    let messages: Counter
    let batches: Counter
    let commitFailures: Counter
    let activations: Counter
    let passivations: Counter
    /// Activations handed over to another node.
    let migrations: Counter
    /// Activations this node moved away in rebalancing rounds.
    let rebalanceMoves: Counter
    let activationDuration: Timer
    /// Activations on the node now (set with each heartbeat).
    let activationsHosted: Gauge
    /// Messages per batch.
    let batchMessages: Recorder
    /// Messages still waiting in the mailbox when a batch has been taken.
    let mailboxDepth: Recorder
    /// From a batch's hand-over to the store until it is durable (or failed).
    let commitDuration: Timer
    /// Alarm handlers that ran to the end.
    let alarmsFired: Counter
    /// Alarm handlers that threw (each is retried with back-off).
    let alarmRetries: Counter
    /// How late an alarm's handler started after its due time.
    let alarmLateness: Timer
    /// Records consumed by stage consumers (committed with their checkpoints).
    let stageRecords: Counter
    /// Stage handlers that threw (the records are retried).
    let stageFailures: Counter
    /// Stage partitions parked after their handler kept failing.
    let stageParked: Counter
    /// Records a stage never read: deleted by the retention of a stream that drops unread records.
    let stageRecordsDropped: Counter
    /// Casts lost where nobody could be told (`cast` throws whatever is known when it is
    /// called), by reason: `link_failed` (queued on a link that failed), `refused` (the
    /// receiving node refused it), `out_of_order` (overtaken on another route),
    /// `activation_failed` (queued for an activation that could not start),
    /// `undeliverable` (never handled by an activation that stopped, and not deliverable
    /// afresh: the node stops, or the owner cannot be reached), `not_committed` (handled in
    /// a batch that certainly did not commit: fenced, or refused until its deadline).
    let castsDroppedLinkFailed: Counter
    let castsDroppedRefused: Counter
    let castsDroppedActivationFailed: Counter
    let castsDroppedUndeliverable: Counter
    let castsDroppedNotCommitted: Counter
    /// Outbound links that failed (connect, handshake or a broken connection).
    let linkFailures: Counter
    let castsDroppedOutOfOrder: Counter

    /// - Parameter factory: where the metrics go: the process's backend (`MetricsSystem`),
    ///   or the simulation's, which counts each node's apart.
    init(factory: any MetricsFactory = MetricsSystem.factory) {
        messages = Counter(label: "dna_messages_total", factory: factory)
        batches = Counter(label: "dna_batches_total", factory: factory)
        commitFailures = Counter(label: "dna_commit_failures_total", factory: factory)
        activations = Counter(label: "dna_activations_total", factory: factory)
        passivations = Counter(label: "dna_passivations_total", factory: factory)
        migrations = Counter(label: "dna_migrations_total", factory: factory)
        rebalanceMoves = Counter(label: "dna_rebalance_moves_total", factory: factory)
        activationDuration = Timer(label: "dna_activation_duration", factory: factory)
        activationsHosted = Gauge(label: "dna_activations", factory: factory)
        batchMessages = Recorder(label: "dna_batch_messages", factory: factory)
        mailboxDepth = Recorder(label: "dna_mailbox_depth", factory: factory)
        commitDuration = Timer(label: "dna_commit_duration", factory: factory)
        alarmsFired = Counter(label: "dna_alarms_fired_total", factory: factory)
        alarmRetries = Counter(label: "dna_alarm_retries_total", factory: factory)
        alarmLateness = Timer(label: "dna_alarm_lateness", factory: factory)
        stageRecords = Counter(label: "dna_stage_records_total", factory: factory)
        stageFailures = Counter(label: "dna_stage_failures_total", factory: factory)
        stageParked = Counter(label: "dna_stage_parked_total", factory: factory)
        stageRecordsDropped = Counter(label: "dna_stage_records_dropped_total", factory: factory)
        castsDroppedLinkFailed = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "link_failed")], factory: factory)
        castsDroppedRefused = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "refused")], factory: factory)
        castsDroppedActivationFailed = Counter(
            label: "dna_casts_dropped_total", dimensions: [("reason", "activation_failed")], factory: factory)
        castsDroppedUndeliverable = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "undeliverable")], factory: factory)
        castsDroppedNotCommitted = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "not_committed")], factory: factory)
        linkFailures = Counter(label: "dna_link_errors_total", dimensions: [("direction", "outbound")], factory: factory)
        castsDroppedOutOfOrder = Counter(label: "dna_casts_dropped_total", dimensions: [("reason", "out_of_order")], factory: factory)
    }
}
