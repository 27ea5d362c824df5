import Testing

@testable import DNA

/// When a drain moves, gives up, and stops forwarding after it left, on instants the tests choose.
@Suite("Drain timing")
struct DrainTimingTests {
    static func at(_ milliseconds: Int64) -> DNAInstant { DNAInstant(nanoseconds: milliseconds * 1_000_000) }

    @Test("a drain moves until nothing is left, no other node takes actors, or six failure timeouts (30 s at least) pass")
    func rounds() {
        let rounds = DrainTiming.Rounds(start: Self.at(1_000), failureTimeout: .seconds(10))
        #expect(rounds.deadline == Self.at(61_000))
        #expect(rounds.next(now: Self.at(1_000), remaining: 5, otherNodes: 2) == .move)
        #expect(rounds.next(now: Self.at(2_000), remaining: 0, otherNodes: 2) == .done)
        #expect(rounds.next(now: Self.at(2_000), remaining: 3, otherNodes: 0) == .noOtherNode)
        #expect(rounds.next(now: Self.at(61_000), remaining: 3, otherNodes: 2) == .timedOut)
        #expect(rounds.next(now: Self.at(61_000), remaining: 0, otherNodes: 2) == .done, "nothing left is done, late or not")
        let short = DrainTiming.Rounds(start: Self.at(0), failureTimeout: .seconds(2))
        #expect(short.deadline == Self.at(30_000), "at least 30 s")
        #expect(rounds.pause(afterRoundMoving: 0, stopping: 0) == .milliseconds(10), "all still claiming their names")
        #expect(rounds.pause(afterRoundMoving: 1, stopping: 0) == nil)
        #expect(rounds.pause(afterRoundMoving: 0, stopping: 2) == nil)
    }

    @Test("after leaving, a node forwards two heartbeats at least, then until one passes quiet, at most the failure timeout")
    func forwarding() {
        var quiet = DrainTiming.Forwarding(start: Self.at(0), received: 4, heartbeatInterval: .seconds(1), failureTimeout: .seconds(5))
        #expect(quiet.tick(now: Self.at(1_000), received: 4) == true, "one interval: too early to stop")
        #expect(quiet.tick(now: Self.at(2_000), received: 4) == false, "two intervals, the last quiet")

        var busy = DrainTiming.Forwarding(start: Self.at(0), received: 0, heartbeatInterval: .seconds(1), failureTimeout: .seconds(5))
        for (second, received) in [(1, 3), (2, 5), (3, 9), (4, 12)] {
            #expect(busy.tick(now: Self.at(Int64(second) * 1_000), received: received) == true, "requests still come at \(second) s")
        }
        #expect(busy.tick(now: Self.at(5_000), received: 20) == false, "the failure timeout ends it")

        var late = DrainTiming.Forwarding(start: Self.at(0), received: 0, heartbeatInterval: .seconds(1), failureTimeout: .seconds(5))
        #expect(late.tick(now: Self.at(1_000), received: 1) == true)
        #expect(late.tick(now: Self.at(2_000), received: 2) == true)
        #expect(late.tick(now: Self.at(3_000), received: 2) == false, "a quiet interval after two")
    }
}
