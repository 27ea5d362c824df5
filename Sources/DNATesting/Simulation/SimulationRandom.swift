import DNAStore
/// The simulation's only source of randomness: SplitMix64, so a seed replays exactly.
package struct SimulationRandom: RandomNumberGenerator {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `true` with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }

    /// A duration between `low` and `high`.
    mutating func duration(_ low: Duration, _ high: Duration) -> Duration {
        let a = low.wholeNanoseconds
        let b = high.wholeNanoseconds
        return .nanoseconds(b <= a ? a : Int64.random(in: a...b, using: &self))
    }

    mutating func pick<C: Collection>(_ collection: C) -> C.Element? {
        guard !collection.isEmpty else { return nil }
        return collection[collection.index(collection.startIndex, offsetBy: Int.random(in: 0..<collection.count, using: &self))]
    }
}
