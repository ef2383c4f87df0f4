/// A small seedable generator (SplitMix64): jitter must be reproducible in tests
/// and in the simulator, and cheap on the decision path.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

extension OpenPolicy {
    /// Failed probes in a row are counted up to this: past it every backoff
    /// has long reached its cap, and a count a peer sent (fleet mode) can
    /// neither overflow nor make `openPeriod` loop for ever.
    static let maxFailedProbes = 1_000

    /// How long to stay open after `failedProbes` probes in a row have failed:
    /// `duration × multiplier^failedProbes`, capped, then spread by ± `jitter`
    /// (never past the cap).
    func openPeriod(failedProbes: Int, random: inout SplitMix64) -> Duration {
        let base = Double(duration.nanosecondsClamped)
        let cap = Double(backoffMax.nanosecondsClamped)
        var period = base
        var step = 0
        let steps = backoffMultiplier > 1 ? min(failedProbes, Self.maxFailedProbes) : 0
        while step < steps && period < cap {
            period *= backoffMultiplier
            step += 1
        }
        period = min(period, cap)
        if jitter > 0 {
            period *= 1 + jitter * (2 * random.unit() - 1)
            period = min(period, cap)
        }
        return .nanoseconds(Int64(max(1, period)))
    }
}
