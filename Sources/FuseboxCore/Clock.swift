#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time: nanoseconds since the Unix epoch.
///
/// The engine works in plain integers so that a decision never converts between
/// calendar types; renderers turn these into RFC 3339 strings at the edges.
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// Saturates at the ends of `Int64` nanoseconds (years -1677 and 2262) instead of trapping:
    /// stored and client-supplied times are untrusted.
    public static func milliseconds(_ ms: Int64) -> Timestamp { Timestamp(nanoseconds: saturatingProduct(ms, 1_000_000)) }
    public static func seconds(_ s: Int64) -> Timestamp { Timestamp(nanoseconds: saturatingProduct(s, 1_000_000_000)) }

    static func saturatingProduct(_ a: Int64, _ b: Int64) -> Int64 {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        guard overflow else { return product }
        return (a < 0) == (b < 0) ? .max : .min
    }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    // Saturating: a deadline far in the future must stay in the future, never wrap into the past.
    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        Timestamp(nanoseconds: saturatingSum(lhs.nanoseconds, rhs.nanosecondsClamped))
    }

    public static func - (lhs: Timestamp, rhs: Duration) -> Timestamp {
        let amount = rhs.nanosecondsClamped
        return Timestamp(nanoseconds: saturatingSum(lhs.nanoseconds, amount == .min ? .max : -amount))
    }

    /// The signed distance `lhs - rhs`.
    public static func - (lhs: Timestamp, rhs: Timestamp) -> Duration {
        let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(rhs.nanoseconds)
        guard overflow else { return .nanoseconds(difference) }
        return .nanoseconds(lhs.nanoseconds < rhs.nanoseconds ? Int64.min : Int64.max)
    }

    static func saturatingSum(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard overflow else { return sum }
        return b > 0 ? .max : .min
    }

    public var description: String { "\(nanoseconds)ns" }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64` (about ±292 years).
    /// (One 128-bit division: `components` took two and was most of a report's clock arithmetic.)
    public var nanosecondsClamped: Int64 { Int64(clamping: attoseconds / 1_000_000_000) }

    /// Milliseconds, rounded down, clamped to `Int64`.
    public var millisecondsClamped: Int64 { nanosecondsClamped / 1_000_000 }

    /// A floating-point number of nanoseconds, saturated to what `Int64` holds
    /// (NaN reads as zero): conversions from computed doubles never trap.
    public static func saturatingNanoseconds(_ value: Double) -> Duration {
        guard !value.isNaN else { return .zero }
        if value >= 9.2e18 { return .nanoseconds(Int64.max) }
        if value <= -9.2e18 { return .nanoseconds(Int64.min) }
        return .nanoseconds(Int64(value))
    }

    /// Seconds as a floating-point number, for rates and metrics.
    public var secondsDouble: Double { Double(nanosecondsClamped) / 1e9 }
}

/// Where the engine reads "now". Injected everywhere so tests and the simulator
/// run on virtual time.
public protocol BreakerClock: Sendable {
    func now() -> Timestamp
}

/// Wall-clock time that never goes backwards: the wall clock is read once at
/// start and advanced by the monotonic clock, so an NTP step cannot shorten or
/// stretch an open period while the timestamps still read as real time.
public struct SystemClock: BreakerClock {
    private let wallAtStart: Int64
    private let monotonicAtStart: Int64

    public init() {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        wallAtStart = Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
        monotonicAtStart = Self.monotonicNanoseconds()
    }

    public func now() -> Timestamp {
        Timestamp(nanoseconds: wallAtStart &+ (Self.monotonicNanoseconds() &- monotonicAtStart))
    }

    /// CLOCK_BOOTTIME (what ContinuousClock reads: monotonic, counting suspend) in
    /// whole nanoseconds: read on every decision, so in plain
    /// integers rather than through `Duration`'s 128-bit arithmetic.
    private static func monotonicNanoseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Int64(spec.tv_sec) &* 1_000_000_000 &+ Int64(spec.tv_nsec)
    }
}
