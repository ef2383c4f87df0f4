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

    public static func milliseconds(_ ms: Int64) -> Timestamp { Timestamp(nanoseconds: ms * 1_000_000) }
    public static func seconds(_ s: Int64) -> Timestamp { Timestamp(nanoseconds: s * 1_000_000_000) }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        Timestamp(nanoseconds: lhs.nanoseconds &+ rhs.nanosecondsClamped)
    }

    public static func - (lhs: Timestamp, rhs: Duration) -> Timestamp {
        Timestamp(nanoseconds: lhs.nanoseconds &- rhs.nanosecondsClamped)
    }

    /// The signed distance `lhs - rhs`.
    public static func - (lhs: Timestamp, rhs: Timestamp) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String { "\(nanoseconds)ns" }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64` (about ±292 years).
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        if seconds > 9_223_372_035 { return .max }
        if seconds < -9_223_372_035 { return .min }
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Milliseconds, rounded down, clamped to `Int64`.
    public var millisecondsClamped: Int64 { nanosecondsClamped / 1_000_000 }

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
    private let monotonicAtStart: ContinuousClock.Instant

    public init() {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        wallAtStart = Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
        monotonicAtStart = ContinuousClock.now
    }

    public func now() -> Timestamp {
        let elapsed = ContinuousClock.now - monotonicAtStart
        return Timestamp(nanoseconds: wallAtStart &+ elapsed.nanosecondsClamped)
    }
}
