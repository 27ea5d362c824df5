@testable import DNA
import DNAStore
import Testing

/// The node's life as one state (pure): which events move it, who is resumed, and what the
/// message paths read.
@Suite("Node life-cycle machine (pure)")
struct NodeLifecycleTests {
    typealias Lifecycle = NodeLifecycle<String, String>

    struct StartFailure: Error {}

    @Test("created → starting → running → draining → left → stopping → stopped, with the snapshot's answers at each step")
    func aDrainedNodeGoesThroughEveryPhase() {
        var life = Lifecycle()
        #expect(life.snapshot.isAccepting, "messages sent before the node runs wait for it")
        guard case .wait = life.waitUntilReady("early caller") else { return #expect(Bool(false)) }
        let began = life.begin()
        #expect(began)
        let beganAgain = life.begin()
        #expect(!beganAgain, "run() once")
        let resumed = life.started(address: "127.0.0.1:7400")
        #expect(resumed == ["early caller"])
        #expect(life.advertisedAddress == "127.0.0.1:7400")
        guard case .ready = life.waitUntilReady("late caller") else { return #expect(Bool(false)) }
        #expect(life.snapshot.isServing && life.snapshot.servingState == .up)

        let drains = life.beginDraining()
        #expect(drains)
        let drainsAgain = life.beginDraining()
        #expect(!drainsAgain, "one drain at a time")
        #expect(life.snapshot.phase == .draining && life.snapshot.drained && !life.snapshot.hasLeft)
        #expect(life.snapshot.servingState == .draining)
        #expect(life.snapshot.isServing, "a draining node still serves what it hosts")
        life.leftCluster()
        #expect(life.snapshot.phase == .left && life.snapshot.hasLeft)
        guard case .ready = life.waitUntilReady("after leaving") else { return #expect(Bool(false)) }

        guard case .wait = life.shutdownRequested("stopper") else { return #expect(Bool(false)) }
        life.beginStopping()
        #expect(!life.snapshot.isAccepting && !life.snapshot.isServing)
        #expect(life.snapshot.hasLeft && life.snapshot.servingState == .draining, "what it did stays known while it stops")
        guard case .stopped = life.waitUntilReady("too late") else { return #expect(Bool(false)) }
        let (stopped, ready) = life.finished()
        #expect(stopped == ["stopper"] && ready.isEmpty)
        #expect(life.snapshot.phase == .stopped)
        guard case .done = life.shutdownRequested("again") else { return #expect(Bool(false), "a second shutdown returns at once") }
    }

    @Test("a node that fails to start fails its ready waiters and resumes its stop waiters")
    func aFailedStart() {
        var life = Lifecycle()
        let began = life.begin()
        #expect(began)
        guard case .wait = life.waitUntilReady("caller") else { return #expect(Bool(false)) }
        guard case .wait = life.shutdownRequested("stopper") else { return #expect(Bool(false)) }
        let (ready, stopped) = life.failedToStart(StartFailure())
        #expect(ready == ["caller"] && stopped == ["stopper"])
        #expect(life.snapshot.phase == .failed && !life.snapshot.isServing)
        guard case .failed(let error) = life.waitUntilReady("later"), error is StartFailure else { return #expect(Bool(false)) }
        let drainsAfterFailure = life.beginDraining()
        #expect(!drainsAfterFailure, "a node that never ran does not drain")
        guard case .done = life.shutdownRequested("stopper") else { return #expect(Bool(false)) }
    }

    @Test("a node shut down before it ran never runs, and its early callers are failed")
    func shutDownBeforeRunning() {
        var life = Lifecycle()
        guard case .wait = life.waitUntilReady("caller") else { return #expect(Bool(false)) }
        guard case .neverRan(let waiters) = life.shutdownRequested("stopper") else { return #expect(Bool(false)) }
        #expect(waiters == ["caller"])
        let began = life.begin()
        #expect(!began, "run() after shutdown() is refused")
        #expect(!life.snapshot.isAccepting)
    }

    @Test("a drain asked through the store is taken once, and only while running")
    func aDrainAskedThroughTheStore() {
        var life = Lifecycle()
        let beforeRunning = life.askedToDrain()
        #expect(!beforeRunning, "not running yet")
        _ = life.begin()
        _ = life.started(address: "a")
        let first = life.askedToDrain()
        #expect(first)
        let second = life.askedToDrain()
        #expect(!second, "the stop is signalled once")
        #expect(life.drainRequested)
        _ = life.beginDraining()
        life.leftCluster()
        life.beginStopping()
        let whileStopping = life.askedToDrain()
        #expect(!whileStopping)
    }

    @Test("the snapshot survives its bits for every phase and flag")
    func snapshotBits() {
        for phase in Lifecycle.Phase.allCases {
            for drained in [false, true] {
                for hasLeft in [false, true] {
                    let snapshot = Lifecycle.Snapshot(phase: phase, drained: drained, hasLeft: hasLeft)
                    #expect(Lifecycle.Snapshot(bits: snapshot.bits) == snapshot)
                }
            }
        }
    }
}
