import Testing

@testable import DNA
@testable import DNAStore

/// The consumer machine of stream and source stages, on instants the tests choose.
@Suite("Stage consumer machine")
struct StageConsumerMachineTests {
    typealias Machine = StageConsumerMachine<Int64>

    static func at(_ milliseconds: Int64) -> DNAInstant { DNAInstant(nanoseconds: milliseconds * 1_000_000) }

    /// A consumer started at `next`, about to read.
    static func reading(from next: Int64 = 1, policy: StageFailurePolicy = StageFailurePolicy()) -> Machine {
        var machine = Machine(policy: policy)
        #expect(machine.pull(now: at(0)) == .start)
        #expect(machine.started(at: next) == next)
        return machine
    }

    @Test("a consumer starts from its checkpoint, else from where the stream registered it; unfinished parents hold it back")
    func starting() {
        var fresh = Machine(policy: StageFailurePolicy())
        #expect(fresh.pull(now: Self.at(0)) == .start)
        #expect(fresh.parentsUnfinished() == .seconds(1))
        #expect(fresh.pull(now: Self.at(1_000)) == .start, "still not started")
        #expect(fresh.started(at: 7) == 7)
        #expect(fresh.pull(now: Self.at(1_001)) == .read(from: 7))

        var resumed = Machine(policy: StageFailurePolicy(), position: 42)
        #expect(resumed.pull(now: Self.at(0)) == .start, "parents and park are checked in every activation")
        #expect(resumed.started(at: 7) == 42, "its own checkpoint wins")
    }

    @Test("a wake during a back-off leaves the retry at its time (defect 6 of issue 18)")
    func backOffHoldsWhateverWakes() {
        var machine = Self.reading()
        machine.readRecords()
        #expect(machine.processFailed("down", what: "records 1-3", now: Self.at(0)) == .retry(after: .milliseconds(100)))
        // Leader syncs and appends wake it every few milliseconds: none runs the batch early.
        for wake in stride(from: Int64(10), to: 100, by: 10) {
            #expect(machine.pull(now: Self.at(wake)) == .wait(.milliseconds(100 - wake)))
        }
        #expect(machine.pull(now: Self.at(100)) == .read(from: 1))
        #expect(machine.processFailed("down", what: "records 1-3", now: Self.at(100)) == .retry(after: .milliseconds(200)))
        #expect(machine.pull(now: Self.at(250)) == .wait(.milliseconds(50)))
        #expect(machine.pull(now: Self.at(300)) == .read(from: 1))
        machine.processed(through: 4)
        #expect(machine.failures == 0)
        #expect(machine.pull(now: Self.at(301)) == .read(from: 4), "a success ends the back-off")
    }

    @Test("the last attempt parks the partition; a wake before the park commits is not a resume; a resume starts over")
    func parking() {
        var machine = Self.reading(policy: StageFailurePolicy(attempts: 3, firstBackOff: .milliseconds(100)))
        var now: Int64 = 0
        for expected in [Duration.milliseconds(100), .milliseconds(200)] {
            #expect(machine.processFailed("down", what: "records 1-3", now: Self.at(now)) == .retry(after: expected))
            now += expected.wholeMilliseconds
            #expect(machine.pull(now: Self.at(now)) == .read(from: 1))
        }
        let park = machine.processFailed("down", what: "records 1-3", now: Self.at(now))
        #expect(park == .park(reason: "records 1-3 failed 3 times: down"))
        #expect(machine.pull(now: Self.at(now + 10)) == .wait(.milliseconds(990)), "the park is not in the store yet")
        #expect(machine.pull(now: Self.at(now + 1_000)) == .checkPark)
        #expect(machine.parkedUntilResumed("records 1-3 failed 3 times: down") == .seconds(1))
        #expect(machine.pull(now: Self.at(now + 2_000)) == .checkPark, "parked until resumed")
        machine.resumed()
        #expect(machine.failures == 0)
        #expect(machine.pull(now: Self.at(now + 2_001)) == .read(from: 1))
        #expect(machine.processFailed("down", what: "records 1-3", now: Self.at(now + 2_001)) == .retry(after: .milliseconds(100)))
    }

    @Test("an empty open partition is polled less and less often, then left until a wake; records start the polls over")
    func emptyPolls() {
        var machine = Self.reading()
        #expect(machine.readNothing(partitionClosed: false) == .poll(after: .milliseconds(5)))
        #expect(machine.readNothing(partitionClosed: false) == .poll(after: .milliseconds(10)))
        for _ in 3...Machine.maxEmptyPolls { _ = machine.readNothing(partitionClosed: false) }
        #expect(machine.readNothing(partitionClosed: false) == .rest)
        machine.readRecords()
        #expect(machine.readNothing(partitionClosed: false) == .poll(after: .milliseconds(5)))
    }

    @Test("a closed partition read to its end finishes the consumer at its position")
    func finishing() {
        var machine = Self.reading(from: 9)
        #expect(machine.readNothing(partitionClosed: true) == .finish(at: 9))
        #expect(machine.pull(now: Self.at(1)) == .read(from: 9), "not finished until the finish is recorded")
        machine.finish(at: 9)
        #expect(machine.pull(now: Self.at(2)) == .finished)
        var known = Machine(policy: StageFailurePolicy(), position: 5, finished: true)
        #expect(known.pull(now: Self.at(0)) == .finished, "a source consumer's stored finish")
    }

    @Test("retention's skip moves the position; a park stored by a source stage holds from activation")
    func skipAndStoredPark() {
        var machine = Self.reading(from: 3)
        machine.skipped(to: 20)
        #expect(machine.pull(now: Self.at(0)) == .read(from: 20))
        var parked = Machine(policy: StageFailurePolicy(), position: 5, parked: "failed 5 times")
        #expect(parked.pull(now: Self.at(0)) == .checkPark)
    }
}

extension Duration {
    fileprivate var wholeMilliseconds: Int64 { components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000 }
}
