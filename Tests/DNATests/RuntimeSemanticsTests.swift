@testable import DNA
import Foundation
import Synchronization
import DNATesting
import DNATestSupport
import Testing

/// A flag a test can set from a task and read later.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

@Suite("Runtime semantics", .integration, .serialized)
struct RuntimeSemanticsTests {
    // MARK: Activation

    @Test func activationLoadsDataBeforeTheInitialiserAndMessagesWaitInOrder() async throws {
        let directory = try TemporaryDirectory()
        do {
            let node = try await makeNode(.sqlite(path: directory.databasePath))
            let ref = try node.ref(Recorder.self, key: "loader")
            try await ref.call(Recorder.Put(key: "a", value: "1"))
            #expect(try await ref.call(Recorder.Activations()) == 1)
            await node.shutdown()
        }
        let node = try await makeNode(.sqlite(path: directory.databasePath))
        let gate = Gate()
        TestHooks.holdActivation(of: "loader", until: gate)
        let ref = try node.ref(Recorder.self, key: "loader")
        for number in 0..<500 { try ref.cast(Recorder.Seq(number: number)) }
        gate.open()
        // The initialiser saw the stored counter (1) and added one: data was loaded first.
        #expect(try await ref.call(Recorder.Activations()) == 2)
        #expect(try await ref.call(Recorder.Get(key: "a")) == "1")
        #expect(try await ref.call(Recorder.SeqReport()) == [499, 0, 500])
        await node.shutdown()
    }

    @Test func initialiserWritesAreDurableBeforeTheFirstMessage() async throws {
        let store = GatedStore(InMemoryStore())
        let node = try await makeNode(.custom(store))
        let ref = try node.ref(Recorder.self, key: "init-durable")
        let events = TestHooks.events(of: "init-durable")
        store.hold()
        try ref.cast(Recorder.Note(label: "first"))
        await store.waitForHeldCommit()  // the initialiser's write
        #expect(store.committedBatchSizes.isEmpty)
        store.release()
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "first")
        #expect(store.committedBatchSizes.first == 1)  // the counter, committed before "first" ran
        await node.shutdown()
    }

    // MARK: Order and batches

    @Test func fifoHoldsWithTwentyThousandQueued() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let gate = Gate()
        TestHooks.holdActivation(of: "fifo", until: gate)
        let ref = try node.ref(Recorder.self, key: "fifo")
        // All 20,000 are queued at once: the activation is held in its initialiser.
        for number in 0..<20_000 { try ref.cast(Recorder.Seq(number: number)) }
        gate.open()
        #expect(try await ref.call(Recorder.SeqReport()) == [19_999, 0, 20_000])
        await node.shutdown()
    }

    @Test func aBatchTakesUpToMaxBatchMessagesOneAtATimeAndCommitsOnce() async throws {
        let store = GatedStore(InMemoryStore())
        let node = try await makeNode(.custom(store), maxBatch: 10)
        let gate = Gate()
        TestHooks.holdActivation(of: "batches", until: gate)
        let ref = try node.ref(Recorder.self, key: "batches")
        for number in 0..<95 { try ref.cast(Recorder.Put(key: "k\(number)", value: "v")) }
        gate.open()
        // Overlaps writes nothing, so whichever batch it lands in, the commits are the same.
        #expect(try await ref.call(Recorder.Overlaps()) == 0)
        // The initialiser's commit, then batches of at most 10 puts, one commit each. The
        // first batch is whatever was queued when the activation started (it waits in the
        // initialiser with it), so only the batches after it are certainly full.
        let sizes = store.committedBatchSizes
        #expect(sizes.first == 1)
        #expect(sizes.dropFirst().allSatisfy { $0 >= 1 && $0 <= 10 }, "\(sizes)")
        #expect(sizes.reduce(0, +) == 96)
        #expect(sizes.count <= 12, "one commit per batch of up to 10: \(sizes)")
        #expect(sizes.dropFirst(2).dropLast().allSatisfy { $0 == 10 }, "\(sizes)")
        await node.shutdown()
    }

    // MARK: Storage semantics

    @Test func readsSeeUncommittedWritesAndTheLastWriteWins() async throws {
        let directory = try TemporaryDirectory()
        let sqlite = SQLiteStore(configuration: .init(path: directory.databasePath))
        let store = GatedStore(sqlite)
        let node = try await makeNode(.custom(store))
        let ref = try node.ref(Recorder.self, key: "ryw")
        try await ref.call(Recorder.Put(key: "warm", value: "w"))
        store.hold()
        try ref.cast(Recorder.Put(key: "a", value: "1"))
        try ref.cast(Recorder.Put(key: "a", value: "2"))
        try ref.cast(Recorder.Put(key: "b", value: "x"))
        try ref.cast(Recorder.Delete(key: "b"))
        try ref.cast(Recorder.Put(key: "c", value: "3"))
        // Immediate replies: nothing is committed yet, but reads see every staged write.
        #expect(try await ref.call(Recorder.Peek(key: "a")) == "2")
        #expect(try await ref.call(Recorder.Peek(key: "b")) == nil)
        #expect(try await ref.call(Recorder.ListNow()) == ["a=2", "c=3", "warm=w"])
        store.release()
        #expect(try await ref.call(Recorder.List()) == ["a=2", "c=3", "warm=w"])
        await node.shutdown()
        await sqlite.close()
        let reopened = try await makeNode(.sqlite(path: directory.databasePath))
        let again = try reopened.ref(Recorder.self, key: "ryw")
        #expect(try await again.call(Recorder.List()) == ["a=2", "c=3", "warm=w"])
        await reopened.shutdown()
    }

    @Test func outputGateHoldsResponsesUntilTheirWritesAreDurable() async throws {
        let store = GatedStore(InMemoryStore())
        let node = try await makeNode(.custom(store))
        let ref = try node.ref(Recorder.self, key: "gate")
        let events = TestHooks.events(of: "gate")
        try await ref.call(Recorder.Put(key: "warm", value: "w"))
        store.hold()
        let putDone = Flag()
        let getDone = Flag()
        let put = Task {
            try await ref.call(Recorder.Put(key: "k", value: "v"))
            putDone.set()
        }
        await store.waitForHeldCommit()
        let get = Task {
            let value = try await ref.call(Recorder.Get(key: "k"))
            getDone.set()
            return value
        }
        // The Get handler reports when it has run; its answer must still be held.
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "get:k")
        #expect(try await ref.call(Recorder.Peek(key: "k")) == "v")
        #expect(!putDone.isSet, "a put was acknowledged before its write was durable")
        #expect(!getDone.isSet, "a read of an unpersisted write was released before it was durable")
        store.release()
        try await put.value
        #expect(try await get.value == "v")
        await node.shutdown()
    }

    @Test func aThrowingHandlerFailsItsCallerAndLeavesNoWrites() async throws {
        let directory = try TemporaryDirectory()
        let node = try await makeNode(.sqlite(path: directory.databasePath))
        let ref = try node.ref(Recorder.self, key: "thrower")
        try await ref.call(Recorder.Put(key: "x", value: "1"))
        await #expect(throws: TestFailure(reason: "refused x")) {
            try await ref.call(Recorder.PutThenFail(key: "x", value: "2"))
        }
        // A failing cast among casts: the others go on, in order.
        try ref.cast(Recorder.Put(key: "y", value: "1"))
        try ref.cast(Recorder.PutThenFail(key: "y", value: "bad"))
        try ref.cast(Recorder.Put(key: "z", value: "1"))
        #expect(try await ref.call(Recorder.Get(key: "x")) == "1")
        #expect(try await ref.call(Recorder.List()) == ["x=1", "y=1", "z=1"])
        #expect(try await ref.call(Recorder.Activations()) == 1)
        await node.shutdown()
        let reopened = try await makeNode(.sqlite(path: directory.databasePath))
        #expect(try await reopened.ref(Recorder.self, key: "thrower").call(Recorder.List()) == ["x=1", "y=1", "z=1"])
        await reopened.shutdown()
    }

    // MARK: Commit failure

    func lockedNode(_ directory: TemporaryDirectory, commitTimeout: Duration) async throws -> Node {
        var sqlite = SQLiteStore.Configuration(path: directory.databasePath)
        sqlite.busyTimeout = .milliseconds(5)
        return try await makeNode(.sqlite(sqlite), commitTimeout: commitTimeout)
    }

    /// A node on SQLite that gives up on a lock after 5 ms, and the wrapper that counts its
    /// refused commits (the node neither runs nor closes a store it is given: close it).
    func countedLockedNode(_ directory: TemporaryDirectory, commitTimeout: Duration) async throws -> (node: Node, store: GatedStore) {
        var sqlite = SQLiteStore.Configuration(path: directory.databasePath)
        sqlite.busyTimeout = .milliseconds(5)
        let store = GatedStore(SQLiteStore(configuration: sqlite))
        return (try await makeNode(.custom(store), commitTimeout: commitTimeout), store)
    }

    @Test(.timeLimit(.minutes(1))) func aFailingCommitIsRetriedWhileItsCallersWait() async throws {
        let directory = try TemporaryDirectory()
        let (node, store) = try await countedLockedNode(directory, commitTimeout: .seconds(30))
        let ref = try node.ref(Recorder.self, key: "retry")
        try await ref.call(Recorder.Put(key: "warm", value: "w"))
        let blocker = try SQLiteConnection(path: directory.databasePath)
        try blocker.execute("BEGIN EXCLUSIVE")
        let done = Flag()
        let put = Task {
            try await ref.call(Recorder.Put(key: "k", value: "v"))
            done.set()
        }
        // Wait until the put was handled (its write staged) and its commit was refused
        // three times: retried, and its caller still waiting.
        while try await ref.call(Recorder.Peek(key: "k")) != "v" { await Task.yield() }
        await store.waitForFailedCommits(3)
        #expect(!done.isSet, "acknowledged while the database was locked")
        try blocker.execute("ROLLBACK")
        try await put.value
        await node.shutdown()
        await store.close()
        let reopened = try await makeNode(.sqlite(path: directory.databasePath))
        #expect(try await reopened.ref(Recorder.self, key: "retry").call(Recorder.Get(key: "k")) == "v")
        await reopened.shutdown()
    }

    @Test func aCommitThatTimesOutResetsTheActorToItsLastDurableState() async throws {
        let directory = try TemporaryDirectory()
        let node = try await lockedNode(directory, commitTimeout: .milliseconds(300))
        let ref = try node.ref(Recorder.self, key: "reset")
        try await ref.call(Recorder.Put(key: "warm", value: "w"))
        let blocker = try SQLiteConnection(path: directory.databasePath)
        try blocker.execute("BEGIN EXCLUSIVE")
        try ref.cast(Recorder.Put(key: "lost-cast", value: "x"))
        let error = await #expect(throws: DNAError.self) {
            try await ref.call(Recorder.Put(key: "k", value: "v"))
        }
        #expect(error?.code == .commitFailed)
        #expect(error?.isRetryable == true)
        try blocker.execute("ROLLBACK")
        // Back to what was durable; the activation was made again from the store.
        #expect(try await ref.call(Recorder.List()) == ["warm=w"])
        #expect(try await ref.call(Recorder.Activations()) == 2)
        try await ref.call(Recorder.Put(key: "k", value: "v2"))
        await node.shutdown()
        let reopened = try await makeNode(.sqlite(path: directory.databasePath))
        #expect(try await reopened.ref(Recorder.self, key: "reset").call(Recorder.List()) == ["k=v2", "warm=w"])
        await reopened.shutdown()
    }

    @Test func aBatchTheStoreRefusesFailsItsCallersWithoutInvitingRetries() async throws {
        let store = InMemoryStore()
        let node = try await makeNode(.custom(store), commitTimeout: .seconds(30))
        let ref = try node.ref(Recorder.self, key: "refused")
        try await ref.call(Recorder.Put(key: "warm", value: "w"))
        store.setUnavailable(StoreError(.invalidArgument, "refused by test"))
        let error = await #expect(throws: DNAError.self) { try await ref.call(Recorder.Put(key: "k", value: "v")) }
        #expect(error?.code == .commitFailed)
        #expect(error?.isRetryable == false)
        store.setUnavailable(nil)
        #expect(try await ref.call(Recorder.List()) == ["warm=w"])
        await node.shutdown()
    }

    @Test func anUnavailableStoreFailsActivationWithARetryableError() async throws {
        let store = InMemoryStore()
        let node = try await makeNode(.custom(store), commitTimeout: .milliseconds(100))
        store.setUnavailable(StoreError(.unavailable, "test outage"))
        let ref = try node.ref(Recorder.self, key: "outage")
        let error = await #expect(throws: DNAError.self) { try await ref.call(Recorder.Get(key: "k")) }
        #expect(error?.code == .activationFailed)
        #expect(error?.isRetryable == true)
        store.setUnavailable(nil)
        try await ref.call(Recorder.Put(key: "k", value: "v"))
        #expect(try await ref.call(Recorder.Get(key: "k")) == "v")
        await node.shutdown()
    }

    // MARK: Timers, info messages, passivation

    @Test func messagesToSelfGoThroughTheMailboxInOrder() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let gate = Gate()
        TestHooks.holdActivation(of: "self", until: gate)
        let events = TestHooks.events(of: "self")
        let ref = try node.ref(Recorder.self, key: "self")
        try ref.cast(Recorder.Note(label: "A"))
        try ref.cast(Recorder.TellSelf(label: "C"))
        try ref.cast(Recorder.Note(label: "B"))
        gate.open()
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "A")
        #expect(await iterator.next() == "B")
        #expect(await iterator.next() == "C")
        try await ref.call(Recorder.Schedule(label: "T", milliseconds: 30))
        try ref.cast(Recorder.Note(label: "D"))
        #expect(await iterator.next() == "D")
        #expect(await iterator.next() == "T")
        #expect(try await ref.call(Recorder.Notes()) == ["A", "tell:C", "B", "C", "D", "T"])
        await node.shutdown()
    }

    @Test func idleActivationsArePassivatedAndComeBackWithTheirData() async throws {
        let clock = TestClock()
        let node = try await makeNode(.custom(InMemoryStore(clock: clock)), idleTimeout: .seconds(60), clock: clock)
        let ref = try node.ref(Recorder.self, key: "idle")
        try await ref.call(Recorder.Put(key: "k", value: "v"))
        #expect(node.activationCount == 1)
        // The reply comes before the activation's task ends; its idle time starts then.
        await node.settleActivations()
        clock.advance(by: .seconds(59))
        await node.passivateIdle(olderThan: node.configuration.idleTimeout)
        #expect(node.activationCount == 1, "idle for 59 s of a 60 s idle timeout")
        clock.advance(by: .seconds(2))
        await node.passivateIdle(olderThan: node.configuration.idleTimeout)
        #expect(node.activationCount == 0)
        #expect(try await ref.call(Recorder.Get(key: "k")) == "v")
        #expect(try await ref.call(Recorder.Activations()) == 2)
        await node.shutdown()
    }

    @Test func pendingTimersKeepAnActivationAlive() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "timer-alive")
        let events = TestHooks.events(of: "timer-alive")
        try await ref.call(Recorder.Schedule(label: "later", milliseconds: 200))
        await node.passivateIdle(olderThan: .zero)
        #expect(node.activationCount == 1)
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "later")
        #expect(try await ref.call(Recorder.Activations()) == 1)
        await node.shutdown()
    }

    @Test func anActorCanAskToBeDeactivated() async throws {
        let node = try await makeNode(.custom(InMemoryStore()))
        let ref = try node.ref(Recorder.self, key: "quitter")
        try await ref.call(Recorder.Put(key: "k", value: "v"))
        let events = node.events()
        try await ref.call(Recorder.Deactivate())
        // The activation ends after its batch, not before the caller hears back: a message
        // sent at once may still reach it. Wait for it to be gone.
        for await event in events {
            if case .actorDeactivated(let id, let reason) = event, id == ref.id {
                #expect(reason == .requested)
                break
            }
        }
        #expect(try await ref.call(Recorder.Activations()) == 2)
        #expect(try await ref.call(Recorder.Get(key: "k")) == "v")
        await node.shutdown()
    }

    @Test func tenThousandCastsAreDurableAcrossARestart() async throws {
        let directory = try TemporaryDirectory()
        do {
            let node = try await makeNode(.sqlite(path: directory.databasePath), maxBatch: 64)
            let ref = try node.ref(Recorder.self, key: "bulk")
            for number in 0..<10_000 { try ref.cast(Recorder.Put(key: "k\(number)", value: "\(number)")) }
            try await ref.call(Recorder.Put(key: "last", value: "done"))
            await node.shutdown()
        }
        let node = try await makeNode(.sqlite(path: directory.databasePath))
        let ref = try node.ref(Recorder.self, key: "bulk")
        #expect(try await ref.call(Recorder.Count()) == 10_001)
        #expect(try await ref.call(Recorder.Get(key: "k9999")) == "9999")
        await node.shutdown()
    }
}
