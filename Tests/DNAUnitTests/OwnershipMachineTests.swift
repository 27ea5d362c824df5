@testable public import DNA
import DNAStore
import Testing

/// The pure decision machines of ownership, on instants the tests choose.
@Suite("Ownership machines (pure, test time)")
struct OwnershipMachineTests {
    static func at(_ milliseconds: Int64) -> DNAInstant { DNAInstant(nanoseconds: milliseconds * 1_000_000) }

    // MARK: NodeLease

    @Test("a heartbeat sent before the lease ran out but acknowledged after starts a new generation (defect b)")
    func lateAcknowledgementStartsANewGeneration() {
        var lease = NodeLease(failureTimeout: .seconds(5))
        let first = lease.heartbeatSent(at: Self.at(0))
        lease.heartbeatSucceeded(first, at: Self.at(10))
        let generation = lease.snapshot.generation
        #expect(lease.snapshot.deadline == Self.at(4000))
        #expect(lease.snapshot.mayServe(generation: generation, at: Self.at(3999)))
        // Sent in time, answered after the deadline: another node may have claimed meanwhile.
        let late = lease.heartbeatSent(at: Self.at(3900))
        #expect(!lease.snapshot.mayServe(generation: generation, at: Self.at(4500)))
        lease.heartbeatSucceeded(late, at: Self.at(4500))
        #expect(lease.holds(at: Self.at(4500)), "the lease itself is valid again")
        #expect(lease.snapshot.generation != generation)
        #expect(!lease.snapshot.mayServe(generation: generation, at: Self.at(4500)), "activations of the old lease must not serve")
    }

    @Test("a heartbeat acknowledged in time keeps the generation; an older acknowledgement never shortens the lease")
    func timelyHeartbeatsKeepTheGeneration() {
        var lease = NodeLease(failureTimeout: .seconds(5))
        let first = lease.heartbeatSent(at: Self.at(0))
        lease.heartbeatSucceeded(first, at: Self.at(5))
        let generation = lease.snapshot.generation
        let older = lease.heartbeatSent(at: Self.at(1000))
        let newer = lease.heartbeatSent(at: Self.at(2000))
        lease.heartbeatSucceeded(newer, at: Self.at(2010))
        lease.heartbeatSucceeded(older, at: Self.at(2020))
        #expect(lease.snapshot.generation == generation)
        #expect(lease.snapshot.deadline == Self.at(6000))
    }

    // MARK: SilenceWatch

    static func record(_ id: String, stamp: Int64, age: Int64) -> NodeRecord {
        NodeRecord(
            id: NodeID(rawValue: id), cluster: "c", address: "a", state: .up, heartbeatAgeMilliseconds: age, activations: 0,
            failureTimeoutMilliseconds: 5000, heartbeatStamp: stamp)
    }

    @Test(
        "a node is silent once its heartbeat mark stayed the same for its failure timeout by the watcher's clock, whatever the store's clock says"
    )
    func silenceIsMeasuredOnTheWatchersClock() {
        var watch = SilenceWatch()
        watch.observe([Self.record("a", stamp: 7, age: 0)], at: Self.at(1000))
        // The store's wall clock jumped: the heartbeat looks an hour old.
        watch.observe([Self.record("a", stamp: 7, age: 3_600_000)], at: Self.at(1250))
        #expect(watch.silentNodes(at: Self.at(5999)).isEmpty, "the lease of a's last heartbeat may still hold")
        #expect(watch.silentNodes(at: Self.at(6000)) == [NodeID(rawValue: "a"): 7])
        // A heartbeat since: the watch starts again.
        watch.observe([Self.record("a", stamp: 8, age: 0)], at: Self.at(6100))
        #expect(watch.silentNodes(at: Self.at(11_000)).isEmpty)
        #expect(watch.silentNodes(at: Self.at(11_100)) == [NodeID(rawValue: "a"): 8])
        // A node no longer listed is forgotten.
        watch.observe([], at: Self.at(11_200))
        #expect(watch.silentNodes(at: Self.at(20_000)).isEmpty)
    }

    // MARK: ActivationStateMachine

    typealias Machine = ActivationStateMachine<String, String, Int>

    typealias OrderedMachine = ActivationStateMachine<OrderedTestMessage, String, Int>

    /// A machine whose messages carry an origin and a sequence, at 0 ms.
    static func orderedMachine(storesNewOrigins: Bool = false) -> OrderedMachine {
        OrderedMachine(
            id: actor,
            limits: .init(
                mailboxCapacity: 100, maxBatch: 10, pipelineDepth: 4, commitTimeout: .seconds(10), storesNewOrigins: storesNewOrigins),
            now: at(0))
    }

    static func ordered(_ origin: UInt32, _ sequence: UInt64) -> OrderedTestMessage {
        OrderedTestMessage(name: "\(origin)/\(sequence)", origin: origin, sequence: sequence)
    }

    static let actor = ActorID(namespace: "t", kind: "k", key: "a")
    static let registration = Registration(actor: actor, rowID: 1, owner: NodeID(rawValue: "n1"), epoch: 1)
    static let write = [StorageOperation(module: "m", key: [1], value: [2])]

    static func machine(commitTimeout: Duration = .seconds(10)) -> Machine {
        Machine(
            id: actor, limits: .init(mailboxCapacity: 100, maxBatch: 10, pipelineDepth: 4, commitTimeout: commitTimeout),
            now: at(0))
    }

    /// A lease valid until `until` milliseconds, of generation 1.
    static func lease(until: Int64 = 4000) -> NodeLease.Snapshot { NodeLease.Snapshot(deadline: at(until), generation: 1) }

    /// A machine with an activation under generation 1 and `message` handled into a batch
    /// in flight (held reply `reply`), at 100 ms.
    static func withBatchInFlight(_ reply: String = "r1", commitTimeout: Duration = .seconds(10)) -> (Machine, CommitBatch) {
        var machine = machine(commitTimeout: commitTimeout)
        _ = machine.enqueue("m1")
        guard case .activate = machine.nextStep(now: at(1), lease: lease()) else { fatalError("expected activate") }
        _ = machine.activated(.granted(registration, leaseGeneration: 1, operations: []), now: at(2))
        guard case .handle(let batch, _) = machine.nextStep(now: at(3), lease: lease()), batch == ["m1"] else {
            fatalError("expected the batch")
        }
        guard case .commit(let commit) = machine.handled(operations: write, held: [reply], now: at(100), lease: lease()) else {
            fatalError("expected a commit")
        }
        return (machine, commit)
    }

    @Test("no batch is handled once the lease ran out, not even the first after activating (defect d)")
    func noBatchAfterTheLease() {
        var machine = Self.machine()
        _ = machine.enqueue("m1")
        guard case .activate = machine.nextStep(now: Self.at(1), lease: Self.lease()) else { return #expect(Bool(false)) }
        // The claim took long: by the time it is granted the lease has run out.
        _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(4100))
        guard case .stop(let failures, let queued, _, let error, _) = machine.nextStep(now: Self.at(4100), lease: Self.lease())
        else { return #expect(Bool(false), "the first batch must not be handled") }
        #expect(failures.isEmpty)
        #expect(queued == ["m1"])
        #expect(error.code == .fenced && error.isRetryable, "it was never handled")
        // A lease of another generation does not do either.
        var other = Self.machine()
        _ = other.enqueue("m1")
        _ = other.nextStep(now: Self.at(1), lease: Self.lease())
        _ = other.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .stop = other.nextStep(now: Self.at(3), lease: NodeLease.Snapshot(deadline: Self.at(9000), generation: 2))
        else { return #expect(Bool(false)) }
    }

    @Test("replies that do not wait for a commit go out only under the lease (defect d)")
    func repliesWithoutACommitCheckTheLease() {
        var machine = Self.machine()
        _ = machine.enqueue("read")
        _ = machine.nextStep(now: Self.at(1), lease: Self.lease())
        _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle = machine.nextStep(now: Self.at(3999), lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(machine.mayAnswer(now: Self.at(3999), lease: Self.lease()))
        // The batch ran across the deadline: its immediate replies and those of a batch that
        // wrote nothing must not go out any more.
        #expect(!machine.mayAnswer(now: Self.at(4000), lease: Self.lease()))
        #expect(machine.leaseLostError(wrote: false).code == .fenced)
        #expect(machine.leaseLostError(wrote: true).code == .outcomeUnknown)
        guard case .fail(let replies, let error) = machine.handled(operations: [], held: ["r"], now: Self.at(4001), lease: Self.lease())
        else { return #expect(Bool(false)) }
        #expect(replies == ["r"])
        #expect(error.code == .fenced)
    }

    // MARK: Migration

    static let target = NodeID(rawValue: "n2")

    @Test("a move starts no batch, waits for the batches in flight without spinning, then hands over; the queue follows")
    func aMoveWaitsForItsCommitsThenHandsOver() {
        var (machine, commit) = Self.withBatchInFlight()
        #expect(machine.enqueue("m2") == .accepted(resume: nil))
        let reply = MigrationReply { _ in }
        #expect(machine.requestMigration(to: Self.target, reply: reply) == .accepted(resume: nil), "an active activation may move")
        guard case .refused = machine.requestMigration(to: Self.target, reply: MigrationReply { _ in }) else {
            return #expect(Bool(false), "one move at a time")
        }
        // m2 is not handled while moving; the task parks until the batch is answered.
        #expect(machine.nextStep(now: Self.at(200), lease: Self.lease()) == .wait(until: nil))
        let parked = machine.park(7, now: Self.at(200))
        #expect(parked, "nothing to do before the answer: no busy loop")
        let action = machine.commitCompleted(sequence: commit.sequence, result: .success(()), now: Self.at(300))
        #expect(action == .init(release: ["r1"], resume: 7), "the batch handled before the move is answered here; the task resumes")
        #expect(
            machine.nextStep(now: Self.at(301), lease: Self.lease()) == .migrate(Self.registration, to: Self.target, reply: reply),
            "everything durable: hand over")
        let (queued, _) = machine.migrated()
        #expect(queued == ["m2"], "what queued meanwhile goes to the new owner")
        #expect(machine.enqueue("m3") == .stopped, "no more messages here")
        #expect(machine.nextStep(now: Self.at(302), lease: Self.lease()) == .exit(waiters: []))
    }

    @Test("a move is refused unless active; a move overtaken by a failed commit is abandoned and its caller told")
    func aMoveThatCannotHappen() {
        var idle = Self.machine()
        guard case .refused = idle.requestMigration(to: Self.target, reply: MigrationReply { _ in }) else {
            return #expect(Bool(false), "nothing active to move")
        }
        var (machine, commit) = Self.withBatchInFlight()
        guard case .accepted = machine.requestMigration(to: Self.target, reply: MigrationReply { _ in }) else {
            return #expect(Bool(false))
        }
        let stillPossible = machine.takeAbandonedMigration() == nil
        #expect(stillPossible)
        _ = machine.commitCompleted(
            sequence: commit.sequence, result: .failure(StoreError(.fenced, "taken over")), now: Self.at(200))
        guard case .stop = machine.nextStep(now: Self.at(201), lease: Self.lease()) else { return #expect(Bool(false)) }
        let abandoned = machine.takeAbandonedMigration()
        #expect(abandoned != nil, "the name is gone: the move cannot happen")
    }

    @Test("batches in flight when the lease runs out are seen through: their callers get what happened (defect c)")
    func inFlightBatchesAreSeenThroughAfterTheLease() {
        var (machine, commit) = Self.withBatchInFlight()
        _ = machine.enqueue("m2")
        // The lease ran out: m2 was never handled and goes on; r1's batch is still under way,
        // and may still commit: its caller is not told it failed.
        let stopped = DNAError(
            .fenced, "the node has not reached the store within the failure timeout; \(Self.actor) stopped here, retry to reach its owner")
        #expect(
            machine.nextStep(now: Self.at(5000), lease: Self.lease())
                == .stop(failures: [], queued: ["m2"], refused: [], error: stopped, waiters: []))
        #expect(machine.nextStep(now: Self.at(5001), lease: Self.lease()) == .wait(until: nil))
        // The store commits it (the epoch was still ours): the caller gets success.
        let action = machine.commitCompleted(sequence: commit.sequence, result: .success(()), now: Self.at(5002))
        #expect(action == .init(release: ["r1"], resume: nil))
        #expect(machine.nextStep(now: Self.at(5003), lease: Self.lease()) == .exit(waiters: []))
    }

    @Test("a lost answer settled by a later attempt is a success (defect c)")
    func lostAnswerThenSuccess() {
        var (machine, commit) = Self.withBatchInFlight()
        _ = machine.commitCompleted(sequence: commit.sequence, result: .failure(StoreError(.outcomeUnknown, "lost")), now: Self.at(150))
        guard case .wait(let until?) = machine.nextStep(now: Self.at(150), lease: Self.lease()) else { return #expect(Bool(false)) }
        guard case .commit(let again) = machine.nextStep(now: until, lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(again.sequence == commit.sequence)
        // The store applied the first attempt and answers the second with success.
        #expect(machine.commitCompleted(sequence: again.sequence, result: .success(()), now: until + .milliseconds(1)).release == ["r1"])
    }

    @Test("a batch whose outcome is still unknown at its deadline gets outcomeUnknown, not a retryable error (defect c)")
    func unknownAtTheDeadline() {
        var (machine, commit) = Self.withBatchInFlight(commitTimeout: .seconds(1))
        var now = Self.at(150)
        var result: Result<Void, StoreError> = .failure(StoreError(.outcomeUnknown, "lost"))
        while true {
            _ = machine.commitCompleted(sequence: commit.sequence, result: result, now: now)
            result = .failure(StoreError(.unavailable, "down"))
            switch machine.nextStep(now: now, lease: Self.lease(until: 100_000)) {
            case .wait(let until?):
                now = until
                guard case .commit(let again) = machine.nextStep(now: now, lease: Self.lease(until: 100_000)) else {
                    return #expect(Bool(false))
                }
                #expect(again.timeout.map { $0 <= .seconds(1) } == true, "an attempt never runs past the deadline")
                commit = again
            case .reset(let failures, let release):
                #expect(now <= Self.at(1100), "given up by the deadline (1 s after the batch was handed over)")
                #expect(release == Self.registration)
                #expect(failures.count == 1)
                #expect(failures.first?.held == ["r1"])
                #expect(failures.first?.error.code == .outcomeUnknown)
                #expect(failures.first?.error.isRetryable == false)
                return
            default:
                return #expect(Bool(false))
            }
        }
    }

    @Test("a batch every attempt of which was refused gets commitFailed, retryable")
    func refusedAtTheDeadline() {
        var (machine, commit) = Self.withBatchInFlight(commitTimeout: .milliseconds(200))
        var now = Self.at(150)
        while true {
            _ = machine.commitCompleted(sequence: commit.sequence, result: .failure(StoreError(.unavailable, "down")), now: now)
            switch machine.nextStep(now: now, lease: Self.lease()) {
            case .wait(let until?):
                now = until
                guard case .commit(let again) = machine.nextStep(now: now, lease: Self.lease()) else { return #expect(Bool(false)) }
                commit = again
            case .reset(let failures, _):
                #expect(failures.first?.error.code == .commitFailed)
                #expect(failures.first?.error.isRetryable == true)
                return
            default:
                return #expect(Bool(false))
            }
        }
    }

    @Test("nobody is answered while an attempt of their batch is under way (defect c)")
    func noAnswerWhileUnderWay() {
        var (machine, first) = Self.withBatchInFlight()
        _ = machine.enqueue("m2")
        guard case .handle = machine.nextStep(now: Self.at(101), lease: Self.lease()) else { return #expect(Bool(false)) }
        guard case .commit(let second) = machine.handled(operations: Self.write, held: ["r2"], now: Self.at(102), lease: Self.lease())
        else { return #expect(Bool(false)) }
        _ = machine.commitCompleted(sequence: first.sequence, result: .failure(StoreError(.fenced, "taken")), now: Self.at(110))
        guard case .wait(nil) = machine.nextStep(now: Self.at(111), lease: Self.lease()) else {
            return #expect(Bool(false), "the second batch is still under way")
        }
        _ = machine.commitCompleted(sequence: second.sequence, result: .failure(StoreError(.fenced, "taken")), now: Self.at(120))
        guard case .stop(let failures, _, _, _, _) = machine.nextStep(now: Self.at(121), lease: Self.lease()) else {
            return #expect(Bool(false))
        }
        #expect(failures.map(\.held) == [["r1"], ["r2"]])
        #expect(failures.allSatisfy { $0.error.code == .fenced && $0.error.isRetryable })
    }

    @Test("replies of a read-only batch behind a batch already durable go out at once")
    func readOnlyRepliesBehindADurableBatch() {
        var (machine, commit) = Self.withBatchInFlight()
        _ = machine.enqueue("read")
        guard case .handle = machine.nextStep(now: Self.at(101), lease: Self.lease()) else { return #expect(Bool(false)) }
        // The commit completes while the read is being handled.
        #expect(machine.commitCompleted(sequence: commit.sequence, result: .success(()), now: Self.at(102)).release == ["r1"])
        guard case .release(let replies) = machine.handled(operations: [], held: ["read"], now: Self.at(103), lease: Self.lease())
        else { return #expect(Bool(false), "appended to a durable batch, it would never go out") }
        #expect(replies == ["read"])
    }

    @Test("a message overtaken by a later one of its origin is refused, also by a later activation (defect i)")
    func overtakenMessagesAreRefused() {
        var first = Self.orderedMachine()
        for message in [
            Self.ordered(1, 5), Self.ordered(2, 1), Self.ordered(1, 7), Self.ordered(1, 6), Self.ordered(2, 2), Self.ordered(1, 0),
        ] {
            _ = first.enqueue(message)
        }
        _ = first.nextStep(now: Self.at(1), lease: Self.lease())
        _ = first.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle(let batch, let refused) = first.nextStep(now: Self.at(3), lease: Self.lease()) else {
            return #expect(Bool(false))
        }
        #expect(batch.map(\.name) == ["1/5", "2/1", "1/7", "2/2", "1/0"], "unnumbered messages always pass")
        #expect(refused.map(\.name) == ["1/6"], "6 of origin 1 came after its 7")
        // What a later activation of the name must know: the latest per origin.
        let stored = first.takeOrderState() ?? []
        #expect(stored.map(\.origin) == [1, 2] && stored.map(\.sequence) == [7, 2])
        #expect(first.takeOrderState() == nil, "unchanged since")
        var second = Self.orderedMachine()
        second.restoreOrder(stored)
        _ = second.enqueue(Self.ordered(1, 6))
        _ = second.enqueue(Self.ordered(1, 8))
        _ = second.nextStep(now: Self.at(1), lease: Self.lease())
        _ = second.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle(let later, let refusedLater) = second.nextStep(now: Self.at(3), lease: Self.lease()) else {
            return #expect(Bool(false))
        }
        #expect(later.map(\.name) == ["1/8"])
        #expect(refusedLater.map(\.name) == ["1/6"])
    }

    @Test("an activation that stops without storing its order refuses the queued messages overtaken by one it handled")
    func aStopRefusesWhatItsHandledMessagesOvertook() {
        var machine = Self.orderedMachine()
        // A read, message 11 of origin 1, is handled and answered from memory.
        _ = machine.enqueue(Self.ordered(1, 11))
        _ = machine.nextStep(now: Self.at(1), lease: Self.lease())
        _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle = machine.nextStep(now: Self.at(3), lease: Self.lease()) else { return #expect(Bool(false)) }
        guard case .release = machine.handled(operations: [], held: ["read"], now: Self.at(4), lease: Self.lease()) else {
            return #expect(Bool(false))
        }
        // Message 7 of origin 1 (sent before the read, on a route that held it) comes after,
        // with a later one and one of another origin; then the lease runs out.
        for message in [Self.ordered(1, 7), Self.ordered(2, 3), Self.ordered(1, 12)] { _ = machine.enqueue(message) }
        guard case .stop(_, let queued, let refused, _, _) = machine.nextStep(now: Self.at(5000), lease: Self.lease()) else {
            return #expect(Bool(false))
        }
        #expect(refused.map(\.name) == ["1/7"], "the next owner does not know of the read: handled there, 7 would follow it")
        #expect(queued.map(\.name) == ["2/3", "1/12"], "the others go on, in order")

        // The same when a claim finds the name at another node (after a reset, the order
        // learned before it stays in memory only) and the queue follows the name there.
        var relocating = Self.orderedMachine()
        relocating.restoreOrder([(origin: 1, sequence: 11)])
        for message in [Self.ordered(1, 7), Self.ordered(1, 12)] { _ = relocating.enqueue(message) }
        let (forwarded, overtaken, _) = relocating.stopAndTakeQueue()
        #expect(overtaken.map(\.name) == ["1/7"])
        #expect(forwarded.map(\.name) == ["1/12"])
    }

    @Test("in a cluster, a read of an origin the activation has not stored yet is answered once its order is durable (seed 2029)")
    func aReadOfANewOriginWaitsForItsOrder() {
        var machine = Self.orderedMachine(storesNewOrigins: true)
        /// Handles the read `message` and returns what the machine says of its reply.
        func read(_ message: OrderedTestMessage, at time: Int64) -> OrderedMachine.HandledAction {
            _ = machine.enqueue(message)
            guard case .handle = machine.nextStep(now: Self.at(time), lease: Self.lease()) else { return .none }
            let order = machine.orderToStore(writes: false).map { state in state.flatMap { [UInt8($0.origin), UInt8($0.sequence)] } }
            return machine.handled(operations: [], held: [message.name], now: Self.at(time + 1), lease: Self.lease(), order: order)
        }
        _ = machine.enqueue(Self.ordered(1, 11))
        _ = machine.nextStep(now: Self.at(1), lease: Self.lease())
        _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle = machine.nextStep(now: Self.at(3), lease: Self.lease()) else { return #expect(Bool(false)) }
        // Origin 1's first message here: message 7 of origin 1 may still wait at a former
        // owner; answered from memory, a crash here would let the next owner apply 7 after it.
        let order = machine.orderToStore(writes: false)
        #expect(order?.map(\.origin) == [1] && order?.map(\.sequence) == [11], "the read's order is stored")
        guard
            case .commit(let commit) = machine.handled(
                operations: [], held: ["1/11"], now: Self.at(4), lease: Self.lease(), order: [1, 11])
        else { return #expect(Bool(false), "the reply waits for the order to be durable") }
        #expect(commit.operations.isEmpty && commit.order == [1, 11])
        let done = machine.commitCompleted(sequence: commit.sequence, result: .success(()), now: Self.at(10))
        #expect(done.release == ["1/11"], "answered once its order is durable")
        // Later reads of that origin are answered from memory.
        guard case .release(let replies) = read(Self.ordered(1, 12), at: 20) else { return #expect(Bool(false)) }
        #expect(replies == ["1/12"])
        // Another origin's first read waits again.
        guard case .commit = read(Self.ordered(2, 3), at: 30) else { return #expect(Bool(false)) }
        _ = machine.commitCompleted(sequence: commit.sequence + 1, result: .success(()), now: Self.at(35))
        // A new activation of the name (a fresh claim) has stored nothing of its own.
        machine.requestDeactivation()
        guard case .deactivate = machine.nextStep(now: Self.at(40), lease: Self.lease()) else { return #expect(Bool(false)) }
        _ = machine.enqueue(Self.ordered(1, 13))
        guard case .activate = machine.nextStep(now: Self.at(41), lease: Self.lease()) else { return #expect(Bool(false)) }
        _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(42))
        guard case .handle = machine.nextStep(now: Self.at(43), lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(machine.orderToStore(writes: false) != nil, "origin 1 is new to this activation")

        // A node alone (no cluster) answers reads from memory: no other owner exists.
        var alone = Self.orderedMachine()
        _ = alone.enqueue(Self.ordered(1, 11))
        _ = alone.nextStep(now: Self.at(1), lease: Self.lease())
        _ = alone.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
        guard case .handle = alone.nextStep(now: Self.at(3), lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(alone.orderToStore(writes: false) == nil)
    }

    @Test("a read-only batch's order is stored before the name is handed over, deactivated or stopped when idle (defect 8)")
    func orderOfReadOnlyBatchesIsStoredBeforeTheNameIsGivenUp() {
        /// A machine that handled the read-only message 11 of origin 1 and answered it.
        func afterARead() -> OrderedMachine {
            var machine = Self.orderedMachine()
            _ = machine.enqueue(Self.ordered(1, 11))
            _ = machine.nextStep(now: Self.at(1), lease: Self.lease())
            _ = machine.activated(.granted(Self.registration, leaseGeneration: 1, operations: []), now: Self.at(2))
            guard case .handle = machine.nextStep(now: Self.at(3), lease: Self.lease()) else { fatalError("expected the batch") }
            guard case .release(let replies) = machine.handled(operations: [], held: ["read"], now: Self.at(4), lease: Self.lease()),
                replies == ["read"]
            else { fatalError("a read-only batch is answered at once") }
            return machine
        }
        /// Carries out a `storeOrder` step: the stored batch writes nothing but the order.
        func storeOrder(_ machine: inout OrderedMachine, at time: Int64) -> CommitBatch? {
            guard case .storeOrder = machine.nextStep(now: Self.at(time), lease: Self.lease()) else { return nil }
            guard let state = machine.takeOrderState(), state.map(\.origin) == [1], state.map(\.sequence) == [11] else { return nil }
            return machine.commitOrder([1, 2, 3], now: Self.at(time))
        }

        // A move: the order goes to the store before the hand-over.
        var moving = afterARead()
        guard case .accepted = moving.requestMigration(to: Self.target, reply: MigrationReply { _ in }) else {
            return #expect(Bool(false))
        }
        guard let batch = storeOrder(&moving, at: 10) else {
            return #expect(Bool(false), "the hand-over must not come before the read's order is stored")
        }
        #expect(batch.operations.isEmpty && batch.order == [1, 2, 3])
        guard case .wait = moving.nextStep(now: Self.at(11), lease: Self.lease()) else { return #expect(Bool(false)) }
        _ = moving.commitCompleted(sequence: batch.sequence, result: .success(()), now: Self.at(12))
        guard case .migrate = moving.nextStep(now: Self.at(13), lease: Self.lease()) else {
            return #expect(Bool(false), "stored: now the hand-over")
        }

        // A deactivation the actor asked for.
        var deactivating = afterARead()
        deactivating.requestDeactivation()
        guard let stored = storeOrder(&deactivating, at: 10) else { return #expect(Bool(false), "the order before the release") }
        _ = deactivating.commitCompleted(sequence: stored.sequence, result: .success(()), now: Self.at(11))
        guard case .deactivate = deactivating.nextStep(now: Self.at(12), lease: Self.lease()) else { return #expect(Bool(false)) }

        // An idle stop (passivation, shutdown): the task is started to store the order first.
        var idle = afterARead()
        guard case .exit = idle.nextStep(now: Self.at(5), lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(idle.stopIfIdle(since: nil, hasTimers: false) == .storeOrderFirst)
        guard let last = storeOrder(&idle, at: 10) else { return #expect(Bool(false), "the order before the stop") }
        _ = idle.commitCompleted(sequence: last.sequence, result: .success(()), now: Self.at(11))
        guard case .exit = idle.nextStep(now: Self.at(12), lease: Self.lease()) else { return #expect(Bool(false)) }
        #expect(idle.stopIfIdle(since: nil, hasTimers: false) == .stopped(Self.registration))
    }

    @Test("the per-origin order alone: overtaken messages refused, unnumbered ones pass, restored state counts, changes taken once")
    func originOrder() {
        func message(_ origin: UInt32, _ sequence: UInt64) -> OrderedTestMessage {
            OrderedTestMessage(name: "\(origin)/\(sequence)", origin: origin, sequence: sequence)
        }
        var order = OriginOrder()
        #expect(order.takeChanged() == nil, "nothing handled")
        order.restore([(origin: 1, sequence: 4)])
        #expect(order.takeChanged() == nil, "a restored state is already stored")
        let (batch, refused) = order.inOrder([message(1, 3), message(1, 5), message(2, 1), message(1, 0), message(1, 5), message(2, 2)])
        #expect(batch.map(\.name) == ["1/5", "2/1", "1/0", "2/2"])
        #expect(refused.map(\.name) == ["1/3", "1/5"], "3 was stored as overtaken; the second 5 repeats the first")
        #expect(order.takeChanged()?.map(\.sequence) == [5, 2])
        #expect(order.takeChanged() == nil, "taken once")
        let (unnumbered, none) = order.inOrder([message(3, 0)])
        #expect(unnumbered.count == 1 && none.isEmpty && order.takeChanged() == nil, "unnumbered messages change nothing")
    }

    @Test("the order state keeps at most maxOrigins origins: the first heard from and the highest-numbered")
    func orderStateIsBounded() {
        func message(_ origin: UInt32, _ sequence: UInt64) -> OrderedTestMessage {
            OrderedTestMessage(name: "", origin: origin, sequence: sequence)
        }
        var order = OriginOrder()
        #expect(order[7] == 0, "an origin not heard from")
        _ = order.inOrder([message(1000, 3)])
        _ = order.inOrder((UInt32(0)..<600).map { message($0, UInt64($0) + 1) })
        _ = order.inOrder([message(1000, 4)])
        #expect(order[1000] == 4 && order[5] == 6)
        let kept = order.takeChanged() ?? []
        #expect(kept.count == OriginOrder.maxOrigins)
        #expect(kept.map(\.origin) == kept.map(\.origin).sorted(), "by origin")
        #expect(kept.contains { $0.origin == 1000 && $0.sequence == 4 }, "the first origin is kept")
        #expect(kept.first?.origin == 89, "the 89 lowest-numbered of the others were forgotten")
        #expect(order[88] == 0 && order[599] == 600)
    }
}

struct OrderedTestMessage: OrderedMessage, Equatable {
    var name: String
    var origin: UInt32
    var sequence: UInt64
}

extension String: OrderedMessage {
    public var origin: UInt32 { 0 }
    public var sequence: UInt64 { 0 }
}
