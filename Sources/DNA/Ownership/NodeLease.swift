/// The node's lease: the time until which it may serve the names it holds, and the
/// generation that tells activations whether the lease ran out since they were made.
///
/// Other nodes may take a node's names once its last heartbeat, *as the store wrote it*, is
/// older than the node's failure timeout. The node serves only until ``duration`` (80 % of
/// that timeout) after it *sent* its last successful heartbeat, by its own clock: the store
/// wrote it later than it was sent, so the node stops answering before anyone may claim.
///
/// Pure: events and instants in, decisions out. The node keeps it behind a lock and
/// publishes ``snapshot`` for lock-free reads.
package struct NodeLease: Sendable {
    /// A heartbeat on its way to the store.
    package struct Heartbeat: Sendable {
        package let sentAt: DNAInstant
    }

    /// What activations read: serve only while `now < deadline` and the generation is theirs.
    package struct Snapshot: Sendable, Equatable {
        package var deadline: DNAInstant
        package var generation: UInt64

        package func mayServe(generation: UInt64, at now: DNAInstant) -> Bool {
            now < deadline && generation == self.generation
        }
    }

    /// How long after a heartbeat is sent the node may serve.
    package let duration: Duration
    package private(set) var snapshot = Snapshot(deadline: .zero, generation: 0)

    /// `failureTimeout`: how long others wait after this node's last heartbeat.
    package init(failureTimeout: Duration) {
        duration = failureTimeout * 4 / 5
    }

    /// Whether the lease is valid at `now` (whatever the generation).
    package func holds(at now: DNAInstant) -> Bool { now < snapshot.deadline }

    /// A heartbeat is being sent now.
    package mutating func heartbeatSent(at now: DNAInstant) -> Heartbeat {
        Heartbeat(sentAt: now)
    }

    /// The store acknowledged `heartbeat` at `now`.
    ///
    /// If the lease ran out before this acknowledgement (a pause, a slow or unreachable
    /// store), another node may have taken the names meanwhile — even if the heartbeat was
    /// sent in time. The generation then moves on, so no activation made under the old
    /// lease serves again; only activations that claim their names afresh do.
    package mutating func heartbeatSucceeded(_ heartbeat: Heartbeat, at now: DNAInstant) {
        if now >= snapshot.deadline { snapshot.generation += 1 }
        snapshot.deadline = max(snapshot.deadline, heartbeat.sentAt + duration)
    }
}

/// What a node has seen of the others' heartbeats, by its own monotonic clock: for each
/// node, the heartbeat mark the store last showed (`NodeRecord.heartbeatStamp`) and since
/// when this node has seen it unchanged. A node is *silent* once its mark has not changed
/// for its own failure timeout; only then may this node take over its names
/// (``ActivationRequest/silentNodes``).
///
/// Why: a node's lease ends 80 % of its failure timeout after it sent its last acknowledged
/// heartbeat, by its own monotonic clock. That heartbeat was written before this node first
/// saw its mark, so the lease ended before the watch does — whatever the store's wall clock
/// did meanwhile (a forward jump ages every heartbeat at once; the store alone would then
/// let names go while their owner still serves). It assumes only that the two monotonic
/// clocks run at rates within 20 % of each other.
///
/// Pure: records and instants in, the silent nodes out. The node feeds it every membership
/// refresh.
package struct SilenceWatch: Sendable {
    private struct Watched: Sendable {
        var stamp: Int64
        var since: DNAInstant
        var failureTimeout: Duration
    }

    private var watched: [NodeID: Watched] = [:]

    package init() {}

    /// The store's node rows, read at `now`. Nodes no longer listed are forgotten.
    package mutating func observe(_ records: [NodeRecord], at now: DNAInstant) {
        // In place: every node reads every other's row each heartbeat, and the set of
        // nodes rarely changes.
        for record in records {
            let failureTimeout = Duration.milliseconds(record.failureTimeoutMilliseconds)
            if let index = watched.index(forKey: record.id), watched.values[index].stamp == record.heartbeatStamp {
                watched.values[index].failureTimeout = failureTimeout
            } else {
                watched[record.id] = Watched(stamp: record.heartbeatStamp, since: now, failureTimeout: failureTimeout)
            }
        }
        if watched.count != records.count {
            let current = Set(records.map(\.id))
            watched = watched.filter { current.contains($0.key) }
        }
    }

    /// Since when `node`'s mark has been seen unchanged, and its failure timeout; `nil` if
    /// not watched.
    package func watch(of node: NodeID) -> (unchangedSince: DNAInstant, failureTimeout: Duration)? {
        watched[node].map { ($0.since, $0.failureTimeout) }
    }

    /// The nodes whose mark has not changed for their failure timeout, with that mark.
    package func silentNodes(at now: DNAInstant) -> [NodeID: Int64] {
        var silent: [NodeID: Int64] = [:]
        for (id, node) in watched where now - node.since >= node.failureTimeout { silent[id] = node.stamp }
        return silent
    }
}
