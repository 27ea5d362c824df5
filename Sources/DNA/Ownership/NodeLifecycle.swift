import DNAStore

/// A node's life as one state: created → starting → running → (draining → left →)
/// stopping → stopped, or failed when it cannot start.
///
/// Pure: events in, what to do out (the waiters to resume). ``Node`` keeps it behind one
/// lock and publishes each state as a ``Snapshot`` that the paths of every message read
/// without the lock.
package struct NodeLifecycle<ReadyWaiter, StopWaiter> {
    package enum Phase: UInt8, Sendable, Equatable, CaseIterable {
        case created, starting, running, draining, left, stopping, stopped, failed
    }

    /// What the message paths read: the phase and the two facts that outlive it.
    package struct Snapshot: Sendable, Equatable {
        package var phase: Phase
        /// A drain began: the node takes no new names, and reports `draining` until it stops.
        package var drained: Bool
        /// The node recorded in the store that it left (after a drain): it claims nothing.
        package var hasLeft: Bool

        /// Messages are taken (those sent before the node runs wait for it) until it stops.
        package var isAccepting: Bool { phase != .stopping && phase != .stopped }
        /// Running, draining or forwarding after it left: started and not stopping.
        package var isServing: Bool { phase == .running || phase == .draining || phase == .left }
        /// What its heartbeats report while it serves.
        package var servingState: NodeState { drained ? .draining : .up }

        package var bits: UInt8 { phase.rawValue | (drained ? 0x10 : 0) | (hasLeft ? 0x20 : 0) }

        package init(phase: Phase, drained: Bool, hasLeft: Bool) {
            self.phase = phase
            self.drained = drained
            self.hasLeft = hasLeft
        }

        package init(bits: UInt8) {
            self.init(phase: Phase(rawValue: bits & 0x0F) ?? .failed, drained: bits & 0x10 != 0, hasLeft: bits & 0x20 != 0)
        }
    }

    package private(set) var phase = Phase.created
    /// Why it failed to start.
    package private(set) var failure: (any Error)?
    private var drained = false
    private var hasLeft = false
    /// A drain was asked for through the store: the node drains as it stops.
    package private(set) var drainRequested = false
    /// The address other nodes reach it at, once bound.
    package var advertisedAddress = "local"
    private var readyWaiters: [ReadyWaiter] = []
    private var stopWaiters: [StopWaiter] = []

    package init() {}

    package var snapshot: Snapshot { Snapshot(phase: phase, drained: drained, hasLeft: hasLeft) }

    // MARK: Starting

    /// `run()` was called: `false` if it was called before, or the node was shut down.
    package mutating func begin() -> Bool {
        guard phase == .created else { return false }
        phase = .starting
        return true
    }

    /// The store is open, the listener bound, the cluster joined: resume these waiters.
    package mutating func started(address: String) -> [ReadyWaiter] {
        advertisedAddress = address
        guard phase == .starting else { return [] }
        phase = .running
        return takeReadyWaiters()
    }

    /// Starting failed: fail the ready waiters with `error`, resume the stop waiters.
    package mutating func failedToStart(_ error: any Error) -> (ready: [ReadyWaiter], stopped: [StopWaiter]) {
        phase = .failed
        failure = error
        return (takeReadyWaiters(), takeStopWaiters())
    }

    package enum ReadyAnswer {
        case ready
        case failed(any Error)
        case stopped
        /// Not yet: the waiter is kept and resumed with ``started(address:)`` or a failure.
        case wait
    }

    /// A caller waits until the node serves.
    package mutating func waitUntilReady(_ waiter: ReadyWaiter) -> ReadyAnswer {
        switch phase {
        case .running, .draining, .left: return .ready
        case .failed: return .failed(failure ?? DNAError(.nodeStopped, "the node failed to start"))
        case .stopping, .stopped: return .stopped
        case .created, .starting:
            readyWaiters.append(waiter)
            return .wait
        }
    }

    // MARK: Draining and leaving

    /// A drain begins (by ``Node/drain()``, a graceful shutdown or the store): `false` if
    /// the node is not serving, or drains already.
    package mutating func beginDraining() -> Bool {
        guard phase == .running else { return false }
        phase = .draining
        drained = true
        return true
    }

    /// The store says someone asked this node to drain: `true` the first time, while it
    /// serves and is not draining yet (it then drains as it stops).
    package mutating func askedToDrain() -> Bool {
        guard phase == .running, !drainRequested else { return false }
        drainRequested = true
        return true
    }

    /// Recorded `left` in the store after a drain left nothing here.
    package mutating func leftCluster() {
        guard phase == .draining else { return }
        phase = .left
        hasLeft = true
    }

    // MARK: Stopping

    /// It stops taking messages and lets its activations finish.
    package mutating func beginStopping() {
        guard phase == .running || phase == .draining || phase == .left else { return }
        phase = .stopping
    }

    /// Everything is stopped: resume the stop waiters, fail the ready waiters.
    package mutating func finished() -> (stopped: [StopWaiter], ready: [ReadyWaiter]) {
        phase = .stopped
        return (takeStopWaiters(), takeReadyWaiters())
    }

    package enum ShutdownAnswer {
        /// Stopped (or failed) already: resume the caller now.
        case done
        /// It never ran and now never will: resume the caller now, fail `readyWaiters`
        /// (callers that waited for it to run), and settle what they left behind.
        case neverRan(readyWaiters: [ReadyWaiter])
        /// Starting or serving: the caller is resumed when it has stopped; signal the stop.
        case wait
    }

    /// ``Node/shutdown()`` was called.
    package mutating func shutdownRequested(_ waiter: StopWaiter) -> ShutdownAnswer {
        switch phase {
        case .created:
            phase = .stopped
            return .neverRan(readyWaiters: takeReadyWaiters())
        case .failed, .stopped:
            return .done
        case .starting, .running, .draining, .left, .stopping:
            stopWaiters.append(waiter)
            return .wait
        }
    }

    private mutating func takeReadyWaiters() -> [ReadyWaiter] {
        defer { readyWaiters = [] }
        return readyWaiters
    }

    private mutating func takeStopWaiters() -> [StopWaiter] {
        defer { stopWaiters = [] }
        return stopWaiters
    }
}
