import DNAStore

/// A node's own decisions, in one place: its life (``NodeLifecycle``), its lease
/// (``NodeLease``), what it knows of the other nodes (``Membership``, the silence it
/// watched, the events their changes make) and when it rebalances (``RebalanceTiming``).
///
/// Pure: events and instants in, what to do out. ``Node`` is its driver, as ``Activation``
/// drives ``ActivationStateMachine``: it keeps it behind one lock, feeds it what the store
/// and the clock say, and carries out what comes back (resume waiters, emit events, fail
/// calls, drain). One membership read changes the view, the watch, the events and the
/// rebalancing timing in one step, so no reader sees one of them updated and not the others.
package struct NodeStateMachine<ReadyWaiter, StopWaiter> {
    package let this: NodeID
    /// Where the node is in its life.
    package var life: NodeLifecycle<ReadyWaiter, StopWaiter>
    package private(set) var lease: NodeLease
    package private(set) var members = Membership()
    package private(set) var silence = SilenceWatch()
    /// How this node saw itself change before the store showed it (a drain, leaving): the
    /// view its next event compares with, instead of its own last record.
    private var selfView: MemberView?
    package private(set) var rebalance: RebalanceTiming
    /// Rounds made, and when the last one began.
    package private(set) var rebalanceRounds = 0
    package private(set) var lastRebalanceRound: DNAInstant?

    package init(this: NodeID, failureTimeout: Duration, rebalance: RebalanceTiming) {
        self.this = this
        self.life = NodeLifecycle()
        self.lease = NodeLease(failureTimeout: failureTimeout)
        self.rebalance = rebalance
    }

    // MARK: Membership

    /// What the node does after reading the membership.
    package struct MembersRead: Equatable {
        /// Nodes that died since the last read (left, or silent past their failure
        /// timeout by the store's clock): forget where their actors were.
        package var died: Set<NodeID> = []
        /// Nodes silent by the store's clock that did not leave: fail the calls waiting on them.
        package var silent: Set<NodeID> = []
        /// The changes to emit, in order.
        package var events: [NodeEvent] = []
        /// Someone asked this node, through the store, to drain (first seen now, while it
        /// serves): drain and leave, as a graceful shutdown.
        package var drain = false
    }

    /// The store's node rows, read at `now` (after the store answered).
    package mutating func membersRead(_ records: [NodeRecord], at now: DNAInstant) -> MembersRead {
        silence.observe(records, at: now)
        var read = MembersRead()
        var joined = false
        var asked = false
        let this = this
        var selfView = selfView
        read.died = members.update(records) { old, record in
            let view = MemberView(record)
            var seen = old.map(MemberView.init)
            if record.id == this, let known = selfView { seen = known }
            if let event = view.event(from: seen, record) {
                read.events.append(event)
                if case .nodeJoined(let node, _) = event, node != this { joined = true }
                if record.id == this { selfView = nil }
            } else if record.id == this, view == selfView {
                // The store shows the change now; a read from before it (still `up`) keeps it.
                selfView = nil
            }
            if !record.isAlive && record.state != .left { read.silent.insert(record.id) }
            if record.id == this { asked = record.rebalanceRequested }
        }
        self.selfView = selfView
        if records.contains(where: { $0.id == this && $0.state == .draining }) { read.drain = life.askedToDrain() }
        if joined { rebalance.nodeJoined() }
        if asked { rebalance.roundAsked() }
        return read
    }

    /// This node's own change, before the store shows it to anyone: the event to emit, if
    /// it is one.
    package mutating func selfChanged(to view: MemberView, _ event: NodeEvent) -> NodeEvent? {
        let seen = selfView ?? members.record(of: this).map(MemberView.init)
        selfView = view
        return seen != view ? event : nil
    }

    // MARK: Lease

    /// A heartbeat is being sent now.
    package mutating func heartbeatSent(at now: DNAInstant) -> NodeLease.Heartbeat { lease.heartbeatSent(at: now) }

    /// The store acknowledged `heartbeat` at `now`.
    package mutating func heartbeatSucceeded(_ heartbeat: NodeLease.Heartbeat, at now: DNAInstant) {
        lease.heartbeatSucceeded(heartbeat, at: now)
    }

    // MARK: Rebalancing

    /// A tick of the rebalancing loop, `elapsed` after the last.
    package mutating func rebalanceTick(_ elapsed: Duration) -> RebalanceTiming.Decision { rebalance.tick(elapsed) }

    /// A round was planned and begins at `now`: its number.
    package mutating func rebalanceRoundBegins(at now: DNAInstant) -> Int {
        rebalanceRounds += 1
        lastRebalanceRound = now
        return rebalanceRounds
    }

    /// A round was made (see ``RebalanceTiming/roundMade(moved:)``).
    package mutating func rebalanceRoundMade(moved: Int?) { rebalance.roundMade(moved: moved) }
}
