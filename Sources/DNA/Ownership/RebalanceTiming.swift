/// When a node makes a rebalancing round: a round asked for (`dna rebalance`) at the next
/// tick; soon after a node joined, or every `interval`, when rebalancing is enabled — but
/// not before the heartbeats after a round that moved actors have carried the receivers'
/// new counts (`settle`), or the next plan would move more than the last one meant.
///
/// Pure: ticks and facts in, a decision out; the node's rebalancing loop drives it once per
/// tick (a heartbeat interval, at most `interval`).
package struct RebalanceTiming: Sendable, Equatable {
    package enum Decision: Sendable, Equatable {
        case wait
        /// A round whatever the loads say, then tell the store it was made (``roundMade(moved:)``).
        case askedRound
        /// A round if the loads are beyond the tolerance (``roundMade(moved:)``).
        case round
    }

    package let enabled: Bool
    package let interval: Duration
    /// The wait after a round that moved actors: two heartbeat intervals.
    package let settleAfterMoves: Duration
    private var sinceRound: Duration = .zero
    private var settle: Duration = .zero
    private var asked = false
    private var joined = false

    package init(enabled: Bool, interval: Duration, heartbeatInterval: Duration) {
        self.enabled = enabled
        self.interval = interval
        self.settleAfterMoves = heartbeatInterval * 2
    }

    /// The store says a round was asked of this node.
    package mutating func roundAsked() { asked = true }

    /// Another node joined the cluster.
    package mutating func nodeJoined() { joined = true }

    /// `elapsed` passed since the last tick: what to do now.
    package mutating func tick(_ elapsed: Duration) -> Decision {
        sinceRound += elapsed
        if asked {
            // The round asked for serves a join seen meanwhile too.
            (asked, joined) = (false, false)
            return .askedRound
        }
        guard enabled, joined || sinceRound >= interval, sinceRound >= settle else { return .wait }
        joined = false
        return .round
    }

    /// A round was made (or found nothing to do: `moved` 0); `nil` for one that was asked
    /// for, which leaves the settling time as it was.
    package mutating func roundMade(moved: Int?) {
        sinceRound = .zero
        if let moved { settle = moved > 0 ? settleAfterMoves : .zero }
    }
}
