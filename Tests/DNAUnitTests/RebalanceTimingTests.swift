@testable import DNA
import Testing

@Suite("Rebalance timing (pure, test time)")
struct RebalanceTimingTests {
    static let second: Duration = .seconds(1)

    static func timing(enabled: Bool = true) -> RebalanceTiming {
        RebalanceTiming(enabled: enabled, interval: .seconds(5), heartbeatInterval: second)
    }

    static func ticks(_ timing: inout RebalanceTiming, _ count: Int) -> [RebalanceTiming.Decision] {
        (0..<count).map { _ in timing.tick(second) }
    }

    @Test("enabled: a round every interval, counted from the last round")
    func everyInterval() {
        var timing = Self.timing()
        #expect(Self.ticks(&timing, 5) == [.wait, .wait, .wait, .wait, .round])
        timing.roundMade(moved: 0)
        #expect(Self.ticks(&timing, 5) == [.wait, .wait, .wait, .wait, .round])
        #expect(timing.tick(Self.second) == .round, "until a round is made, every tick asks for one")
    }

    @Test("a join brings a round at the next tick, but not before the heartbeats after a round that moved")
    func joinAndSettling() {
        var timing = Self.timing()
        timing.nodeJoined()
        #expect(timing.tick(Self.second) == .round)
        timing.roundMade(moved: 3)
        timing.nodeJoined()
        #expect(Self.ticks(&timing, 2) == [.wait, .round], "two heartbeat intervals after a round that moved")
        timing.roundMade(moved: 0)
        timing.nodeJoined()
        #expect(timing.tick(Self.second) == .round, "nothing moved: no settling")
        timing.roundMade(moved: 0)
        #expect(timing.tick(Self.second) == .wait, "the join was served")
    }

    @Test("disabled: no rounds of its own, joins or not; a round asked for comes at the next tick")
    func disabledButAsked() {
        var timing = Self.timing(enabled: false)
        timing.nodeJoined()
        #expect(Self.ticks(&timing, 12).allSatisfy { $0 == .wait })
        timing.roundAsked()
        #expect(timing.tick(Self.second) == .askedRound)
        timing.roundMade(moved: nil)
        #expect(Self.ticks(&timing, 12).allSatisfy { $0 == .wait }, "still none of its own")
    }

    @Test("a round asked for leaves the settling time of the last round as it was")
    func askedRoundKeepsSettling() {
        var timing = Self.timing()
        timing.nodeJoined()
        #expect(timing.tick(Self.second) == .round)
        timing.roundMade(moved: 5)
        timing.roundAsked()
        #expect(timing.tick(Self.second) == .askedRound, "asked: at once, settling or not")
        timing.roundMade(moved: nil)
        timing.nodeJoined()
        #expect(Self.ticks(&timing, 2) == [.wait, .round], "the earlier round's settling still applies")
    }
}
