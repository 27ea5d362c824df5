import DNA
import DNAStore
import DNATransport
import Logging
import Synchronization

// The parts the simulation gives real nodes in place of the process's: an executor for
// their tasks, their clocks, their links to each other and to the store. Everything runs
// on the simulation's one thread; the classes are `@unchecked Sendable` for that reason.

/// The executor of one simulated node's tasks: jobs wait until the simulation runs them,
/// one at a time on its thread, in an order drawn from the seed (any order of ready tasks is
/// one a thread pool could have chosen).
final class SimulatedExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private var random: SimulationRandom
    /// A crashed process runs nothing more: its jobs are dropped (their tasks never resume).
    private let dead = Atomic<Bool>(false)
    private let becameReady: @Sendable () -> Void

    init(seed: UInt64, becameReady: @escaping @Sendable () -> Void) {
        random = SimulationRandom(seed: seed)
        self.becameReady = becameReady
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        guard !dead.load(ordering: .relaxed) else { return }
        let first = jobs.withLock { jobs in
            jobs.append(job)
            return jobs.count == 1
        }
        if first { becameReady() }
    }

    var hasJobs: Bool { jobs.withLock { !$0.isEmpty } }

    /// Runs one ready job; `false` if there was none.
    func runOne() -> Bool {
        let job: UnownedJob? = jobs.withLock { jobs in
            guard !jobs.isEmpty else { return nil }
            let index = jobs.count == 1 ? 0 : Int.random(in: 0..<jobs.count, using: &random)
            jobs.swapAt(index, jobs.count - 1)
            return jobs.removeLast()
        }
        guard let job else { return false }
        job.runSynchronously(on: asUnownedTaskExecutor())
        return true
    }

    func kill() {
        dead.store(true, ordering: .relaxed)
        jobs.withLock { $0.removeAll() }
    }
}

/// A one-shot timer a task waits on: fired by the simulation's event, or cancelled.
final class SimulatedTimer: @unchecked Sendable {
    private enum State {
        case idle
        case armed(UnsafeContinuation<Void, any Error>)
        case cancelled
        case done
    }

    private let state = Mutex<State>(.idle)

    /// `false` if it was cancelled first (then the continuation was resumed here).
    func arm(_ continuation: UnsafeContinuation<Void, any Error>) -> Bool {
        let cancelled = state.withLock { state -> Bool in
            if case .cancelled = state { return true }
            state = .armed(continuation)
            return false
        }
        if cancelled { continuation.resume(throwing: CancellationError()) }
        return !cancelled
    }

    func fire() {
        let continuation = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
            guard case .armed(let continuation) = state else { return nil }
            state = .done
            return continuation
        }
        continuation?.resume()
    }

    func cancel() {
        let continuation = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
            switch state {
            case .idle:
                state = .cancelled
                return nil
            case .armed(let continuation):
                state = .cancelled
                return continuation
            case .cancelled, .done:
                return nil
            }
        }
        continuation?.resume(throwing: CancellationError())
    }
}

/// A simulated node's clock: monotonic from its boot, drifting from the simulation's time
/// by its rate; its dates drift with it.
final class SimulatedClock: DNAClock, @unchecked Sendable {
    unowned let simulation: RuntimeSimulation
    let slot: Int
    let incarnation: Int
    private let bootTime: Int64
    private let rate: Double

    init(simulation: RuntimeSimulation, slot: Int, incarnation: Int, rate: Double) {
        self.simulation = simulation
        self.slot = slot
        self.incarnation = incarnation
        self.bootTime = simulation.now
        self.rate = rate
    }

    var now: DNAInstant { DNAInstant(nanoseconds: Int64(Double(simulation.now - bootTime) * rate)) }

    var wallNow: WallClockTime {
        WallClockTime(milliseconds: RuntimeSimulation.epochMilliseconds + (bootTime + now.nanoseconds) / 1_000_000)
    }

    /// The simulation's time at which this clock reads `local`.
    func globalTime(_ local: DNAInstant) -> Int64 {
        bootTime + Int64((Double(local.nanoseconds) / rate).rounded(.up))
    }

    func sleep(until deadline: DNAInstant) async throws {
        try Task.checkCancellation()
        if deadline <= now { return }
        let timer = SimulatedTimer()
        let at = globalTime(deadline)
        let simulation = self.simulation
        let slot = self.slot
        let incarnation = self.incarnation
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                if timer.arm(continuation) {
                    simulation.schedule(at: at, on: slot, incarnation: incarnation, "timer") { timer.fire() }
                }
            }
        } onCancel: {
            timer.cancel()
        }
    }
}

/// The store's clock: the simulation's time, plus the jumps the faults made.
final class SimulatedStoreClock: DNAClock, @unchecked Sendable {
    unowned let simulation: RuntimeSimulation

    init(simulation: RuntimeSimulation) { self.simulation = simulation }

    var now: DNAInstant { DNAInstant(nanoseconds: simulation.now + simulation.storeClockOffset) }

    var wallNow: WallClockTime { WallClockTime(milliseconds: RuntimeSimulation.epochMilliseconds + now.nanoseconds / 1_000_000) }

    func sleep(until deadline: DNAInstant) async throws {
        preconditionFailure("the store does not sleep")
    }
}

/// A simulated node's connection to the store: each operation travels to it, is applied
/// there (or fails, or its answer is lost, as the faults say), and its answer travels back.
final class SimulatedStoreLink: InMemoryStoreInterposer, @unchecked Sendable {
    unowned let simulation: RuntimeSimulation
    let slot: Int
    let incarnation: Int

    init(simulation: RuntimeSimulation, slot: Int, incarnation: Int) {
        self.simulation = simulation
        self.slot = slot
        self.incarnation = incarnation
    }

    func intercept<T: Sendable>(
        _ operation: String, apply: @escaping @Sendable () -> Result<T, StoreError>,
        answer: @escaping @Sendable (Result<T, StoreError>) -> Void
    ) {
        simulation.storeOperation(from: slot, incarnation: incarnation, operation, apply: apply, answer: answer)
    }
}

/// A simulated node's links to the others, over the simulation's network: requests and
/// their responses travel on a connection (in order, with delays); a connection that
/// breaks loses what was on it, and its sender hears `linkFailed` for that attempt.
final class SimulatedTransport: NodeTransport, @unchecked Sendable {
    unowned let simulation: RuntimeSimulation
    let slot: Int
    let incarnation: Int
    let delegate: any ClusterTransportDelegate
    let sequencer: RequestSequencer
    var isShutDown = false
    var linked: Set<PeerAddress> = []
    /// As ``ClusterTransport``'s links: after a failed attempt a link backs off (50 ms,
    /// doubling, at most 2 s; started over by a connection that succeeds), and a send
    /// meanwhile fails at once.
    private var backOff: [PeerAddress: (failures: Int, until: Int64)] = [:]
    static let reconnectBackoff = Backoff(first: .milliseconds(50), maximum: .seconds(2))

    init(
        simulation: RuntimeSimulation, slot: Int, incarnation: Int, delegate: any ClusterTransportDelegate, sequencer: RequestSequencer
    ) {
        self.simulation = simulation
        self.slot = slot
        self.incarnation = incarnation
        self.delegate = delegate
        self.sequencer = sequencer
    }

    func start() async throws -> Int { RuntimeSimulation.port }

    func send(_ request: WireRequest, to peer: PeerAddress, queued: (UInt64) -> Void) throws(TransportError) {
        guard !isShutDown else { throw TransportError(.shutDown, "the transport is shut down") }
        guard let target = RuntimeSimulation.slot(of: peer) else {
            throw TransportError(.invalidAddress, "no simulated node at \(peer)")
        }
        if let (_, until) = backOff[peer], simulation.now < until {
            throw TransportError(.unreachable, "backing off after a failure; retry in \((until - simulation.now) / 1_000_000) ms")
        }
        linked.insert(peer)
        var request = request
        // Numbered as it is queued, as the real transport does (a request the node numbered already keeps its number).
        if request.sequence == 0 { request.sequence = sequencer.next() }
        let attempt = simulation.network.send(request, from: slot, incarnation: incarnation, to: target)
        queued(attempt)
    }

    func connect(to peer: PeerAddress) { linked.insert(peer) }

    /// An attempt to `peer` failed: the link backs off.
    func attemptFailed(to peer: PeerAddress) {
        let failures = (backOff[peer]?.failures ?? 0) + 1
        backOff[peer] = (failures, simulation.now + Self.reconnectBackoff.delay(afterFailures: failures).wholeNanoseconds)
    }

    /// A connection to `peer` was made (its handshake, immediate here): back-off starts over.
    func connected(to peer: PeerAddress) { backOff[peer] = nil }

    /// As ``ClusterTransport`` does: the link is shut down, and what was on it is not reported.
    func disconnect(from peer: PeerAddress) {
        linked.remove(peer)
        simulation.trace("n\(slot) disconnects from \(peer)")
        if let target = RuntimeSimulation.slot(of: peer) {
            simulation.network.breakConnection(from: slot, to: target, reason: "disconnected", report: false)
        }
    }

    var linkedPeers: [PeerAddress] { Array(linked) }

    func isConnected(to peer: PeerAddress) -> Bool { linked.contains(peer) }

    func shutdown() async {
        isShutDown = true
        simulation.network.breakConnections(of: slot, reason: "shut down")
    }
}

/// A log handler that writes into the simulation's trace (with `trace` on).
struct SimulationLogHandler: LogHandler {
    unowned let simulation: RuntimeSimulation
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        simulation.trace("\(label) \(event.level): \(event.message) \(fields)")
    }
}

extension SimulationLogHandler: @unchecked Sendable {}
