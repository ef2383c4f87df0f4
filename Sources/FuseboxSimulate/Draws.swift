import FuseboxCore

/// Random draws keyed by what they are for, so both strategies see the same
/// provider behaviour for the same request and attempt, and a run depends on
/// its seed alone.
struct Draws {
    let seed: UInt64

    /// A uniform value in [0, 1) for (purpose, a, b, c).
    func unit(_ purpose: UInt64, _ a: Int, _ b: Int = 0, _ c: Int = 0) -> Double {
        var generator = SplitMix64(seed: seed ^ (purpose &* 0x9E37_79B9_7F4A_7C15)
            ^ (UInt64(truncatingIfNeeded: a) &* 0xBF58_476D_1CE4_E5B9)
            ^ (UInt64(truncatingIfNeeded: b) &* 0x94D0_49BB_1331_11EB)
            ^ (UInt64(truncatingIfNeeded: c) &* 0xD6E8_FEB8_6659_FD93))
        _ = generator.next()
        return generator.unit()
    }

    /// A log-normal latency with the provider's median and p99.
    func latency(_ provider: ProviderModel, providerIndex: Int, request: Int, attempt: Int) -> Duration {
        let u1 = max(1e-12, unit(1, providerIndex, request, attempt))
        let u2 = unit(2, providerIndex, request, attempt)
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        let median = Double(provider.median.nanosecondsClamped)
        let sigma = max(0, log(Double(provider.p99.nanosecondsClamped) / median) / 2.326)
        return .nanoseconds(Int64(median * exp(sigma * normal)))
    }
}

// The standard library has no log/exp/cos without Foundation; these come from the C library.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
