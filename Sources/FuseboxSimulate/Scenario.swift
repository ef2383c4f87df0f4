import FuseboxCore

/// What a simulation replays: traffic, providers with their fault windows,
/// the app's two strategies, and the breaker policy.
public struct Scenario: Sendable, Equatable {
    public enum Arrivals: String, Sendable, CaseIterable { case uniform, poisson }

    public var duration: Duration = .seconds(900)
    /// Requests per second.
    public var rate: Double = 100.0 / 60.0
    public var arrivals: Arrivals = .uniform
    public var seed: UInt64 = 1
    /// When virtual time starts (the store's timestamps).
    public var start = Timestamp(rfc3339: "2026-01-01T00:00:00Z")!
    /// The app gives up on a call after this long.
    public var clientTimeout: Duration = .seconds(30)
    public var providers: [ProviderModel] = [
        ProviderModel(name: "openai", median: .milliseconds(800), p99: .seconds(3),
                      faults: [FaultWindow(start: .seconds(120), length: .seconds(300), mode: .timeout)]),
        ProviderModel(name: "anthropic", median: .milliseconds(1_000), p99: .seconds(4)),
        ProviderModel(name: "ollama", median: .milliseconds(1_500), p99: .seconds(5)),
    ]
    /// The fallback chain, first = primary; naive retry uses only the primary.
    public var chain: [String] = ["openai", "anthropic", "ollama"]
    public var retry = RetryPolicy()
    public var policy: BreakerPolicy = .default

    public init() {}

    /// The reference scenario: a 5-minute outage of the primary from minute 2
    /// (calls hang until the 30 s client timeout) at 100 requests a minute, in
    /// 15 minutes, long enough to see the primary win its traffic back.
    public static let reference = Scenario()

    public var primary: String { chain.first ?? "" }

    /// Whether a provider of the chain limits its rate: then the breaker is
    /// also run with a rate budget matching each limit.
    public var hasRateLimits: Bool { chain.contains { provider($0)?.rateLimit != nil } }

    /// Whether a provider of the chain slows down without failing: then the
    /// breaker is also run with a `fastest` chain, against the ordered one.
    public var hasSlowdown: Bool {
        chain.contains { name in provider(name)?.faults.contains { if case .slow = $0.mode { true } else { false } } ?? false }
    }

    /// The strategies worth comparing for this scenario.
    public var strategies: [Strategy] {
        [.naiveRetry, .breaker] + (hasRateLimits ? [.breakerBudget] : []) + (hasSlowdown ? [.breakerFastest] : [])
    }

    public func provider(_ name: String) -> ProviderModel? { providers.first { $0.name == name } }
}

/// One provider: a latency distribution and when it misbehaves.
public struct ProviderModel: Sendable, Equatable {
    public var name: String
    /// Median and 99th percentile of a healthy call (log-normal).
    public var median: Duration
    public var p99: Duration
    public var faults: [FaultWindow]
    /// The provider's own rate limit, requests per minute: above it a call is
    /// answered 429 with Retry-After, as LLM APIs do.
    public var rateLimit: Int?

    public init(name: String, median: Duration, p99: Duration, faults: [FaultWindow] = [], rateLimit: Int? = nil) {
        self.name = name
        self.median = median
        self.p99 = p99
        self.faults = faults
        self.rateLimit = rateLimit
    }

    /// The fault in force at `offset` from the start of the run.
    func fault(at offset: Duration) -> FaultWindow? {
        faults.first { offset >= $0.start && offset < $0.start + $0.length }
    }
}

/// A span of misbehaviour.
public struct FaultWindow: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// The call hangs until the client's timeout.
        case timeout
        /// The call fails fast with this status (503, 429…), optionally with Retry-After.
        case error(status: Int, retryAfter: Duration?)
        /// The call succeeds, this slowly.
        case slow(Duration)
    }

    public var start: Duration
    public var length: Duration
    public var mode: Mode
    /// Share of calls affected (1: all; 0.3: a partial fault).
    public var ratio: Double

    public init(start: Duration, length: Duration, mode: Mode, ratio: Double = 1) {
        self.start = start
        self.length = length
        self.mode = mode
        self.ratio = ratio
    }

    public var end: Duration { start + length }
}

/// The naive app's retries: each request up to `retries` more times, waiting
/// `base`, then doubling, capped at `cap`.
public struct RetryPolicy: Sendable, Equatable {
    public var retries = 3
    public var base: Duration = .seconds(2)
    public var cap: Duration = .seconds(10)

    public init() {}

    func backoff(afterAttempt attempt: Int) -> Duration {
        var wait = base
        for _ in 1..<max(1, attempt) { wait = min(wait * 2, cap) }
        return min(wait, cap)
    }
}

public enum Strategy: String, Sendable, CaseIterable {
    /// Routes through the engine (with or without budgets).
    public var usesBreaker: Bool { self != .naiveRetry }

    case naiveRetry = "naive-retry"
    case breaker
    /// The breaker with a `rate` budget set to each rate-limited provider's limit.
    case breakerBudget = "breaker+budget"
    /// The breaker with the chain's `fastest` strategy (default margin and window).
    case breakerFastest = "breaker+fastest"

    public var title: String {
        switch self {
        case .naiveRetry: return "no breaker (retries)"
        case .breaker: return "breaker + fallback"
        case .breakerBudget: return "breaker + rate budget"
        case .breakerFastest: return "breaker + fastest route"
        }
    }
}
