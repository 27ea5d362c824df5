/// When a draining node moves its activations, gives up, and stops forwarding after it
/// left. Pure: ``Node`` drives it with its clock's instants and what it sees.
package enum DrainTiming {
    /// The rounds of a drain: move what is left to the other live nodes until nothing is,
    /// no other node takes actors, or the deadline passes.
    package struct Rounds: Sendable, Equatable {
        package let deadline: DNAInstant

        /// The deadline: six failure timeouts, at least 30 s (long enough for activations
        /// still claiming their names, short enough that a stuck drain still stops).
        package init(start: DNAInstant, failureTimeout: Duration) {
            deadline = start + max(failureTimeout * 6, .seconds(30))
        }

        package enum Decision: Equatable, Sendable {
            /// Move the `remaining` activations to the other nodes.
            case move
            /// Nothing is left here.
            case done
            /// No other live node takes actors: the rest stay until the node stops.
            case noOtherNode
            /// The deadline passed with activations left.
            case timedOut
        }

        package func next(now: DNAInstant, remaining: Int, otherNodes: Int) -> Decision {
            if remaining == 0 { return .done }
            if now >= deadline { return .timedOut }
            if otherNodes == 0 { return .noOtherNode }
            return .move
        }

        /// After a round in which no activation could move yet (all still claiming their
        /// names): how long to wait before the next; `nil` to go on at once.
        package func pause(afterRoundMoving moved: Int, stopping stopped: Int) -> Duration? {
            moved == 0 && stopped == 0 ? .milliseconds(10) : nil
        }
    }

    /// After it left, the node forwards what still comes, so that callers whose nodes still
    /// send here get their answers from the actors' new owners rather than an error: for two
    /// heartbeat intervals at least, then until a heartbeat interval passes with no request,
    /// at most the failure timeout.
    package struct Forwarding: Sendable, Equatable {
        package let start: DNAInstant
        package let heartbeatInterval: Duration
        package let failureTimeout: Duration
        private var lastCount: Int

        package init(start: DNAInstant, received: Int, heartbeatInterval: Duration, failureTimeout: Duration) {
            self.start = start
            self.heartbeatInterval = heartbeatInterval
            self.failureTimeout = failureTimeout
            lastCount = received
        }

        /// A heartbeat interval passed; `received` counts the requests since it left.
        /// `true` while it should keep forwarding.
        package mutating func tick(now: DNAInstant, received: Int) -> Bool {
            defer { lastCount = received }
            let elapsed = now - start
            if elapsed >= failureTimeout { return false }
            return !(received == lastCount && elapsed >= heartbeatInterval * 2)
        }
    }
}
