/// Every knob of one breaker. The defaults are the seed's: five consecutive
/// failures trip it, it stays open 60 s, and a single probe decides.
public struct BreakerPolicy: Sendable, Equatable {
    public var trip: TripPolicy
    public var open: OpenPolicy
    public var halfOpen: HalfOpenPolicy
    public var classify: ClassificationPolicy
    /// An unreported permit counts as a timeout after this long.
    public var permitTTL: Duration
    public var budget: BudgetPolicy
    /// Transitions a minute at most; past it an open breaker stays open until
    /// the minute frees (operators' force and reset always act). `nil`: no cap.
    public var maxTransitionsPerMinute: Int?
    /// In fleet mode, whether peers share this breaker's openings (`fleet: false` keeps it local).
    public var fleetShared = true
    /// The sidecar's own health check; `nil`: a user's request is the half-open probe.
    public var probe: ProbePolicy?
    /// What the provider can do (`vision`, `tools`…): a route that `requires` more passes it over.
    public var capabilities: [String] = []
    /// What a call costs, for a `cheapest` chain.
    public var cost: CallCost?

    public init(
        trip: TripPolicy = TripPolicy(),
        open: OpenPolicy = OpenPolicy(),
        halfOpen: HalfOpenPolicy = HalfOpenPolicy(),
        classify: ClassificationPolicy = ClassificationPolicy(),
        permitTTL: Duration = .seconds(120),
        budget: BudgetPolicy = BudgetPolicy(),
        maxTransitionsPerMinute: Int? = 20
    ) {
        self.trip = trip
        self.open = open
        self.halfOpen = halfOpen
        self.classify = classify
        self.permitTTL = permitTTL
        self.budget = budget
        self.maxTransitionsPerMinute = maxTransitionsPerMinute
    }

    public static let `default` = BreakerPolicy()
}

/// When a closed breaker opens. Every rule that is set is checked; the first
/// that holds trips the breaker.
public struct TripPolicy: Sendable, Equatable {
    /// Trip after this many failures in a row; `nil` turns the rule off.
    public var consecutiveFailures: Int?
    /// Trip when the window's failure rate reaches this (0...1); needs a window.
    public var failureRate: Double?
    /// The statistics window for the rate rules; `nil` turns both rate rules off.
    public var window: WindowPolicy?
    /// The rate rules wait until the window holds this many calls.
    public var minimumCalls: Int
    /// Trip when this share of the window's calls were slow; needs a window.
    public var slowCall: SlowCallPolicy?

    public init(
        consecutiveFailures: Int? = 5,
        failureRate: Double? = 0.5,
        window: WindowPolicy? = .count(size: 100),
        minimumCalls: Int = 20,
        slowCall: SlowCallPolicy? = SlowCallPolicy()
    ) {
        self.consecutiveFailures = consecutiveFailures
        self.failureRate = failureRate
        self.window = window
        self.minimumCalls = minimumCalls
        self.slowCall = slowCall
    }
}

public enum WindowPolicy: Sendable, Equatable {
    /// The last `size` calls.
    case count(size: Int)
    /// The last `seconds`, kept in `buckets` equal slices.
    case time(seconds: Int, buckets: Int)
}

public struct SlowCallPolicy: Sendable, Equatable {
    /// A call at least this slow counts as slow, whatever its outcome.
    public var threshold: Duration
    public var rate: Double

    public init(threshold: Duration = .seconds(30), rate: Double = 1.0) {
        self.threshold = threshold
        self.rate = rate
    }
}

/// How long an open breaker stays open.
public struct OpenPolicy: Sendable, Equatable {
    public var duration: Duration
    /// Each failed probe multiplies the next open period by this.
    public var backoffMultiplier: Double
    /// The open period never exceeds this (before Retry-After, which can).
    public var backoffMax: Duration
    /// Spread each open period by ± this fraction, so breakers tripped together
    /// do not probe together.
    public var jitter: Double
    /// A report carrying `retry_after` opens the breaker for at least that long.
    public var honorRetryAfter: Bool
    /// The longest Retry-After believed, for the open period and for a 429's
    /// budget pause; `nil` means `backoffMax`. One report can do no more harm.
    public var maxRetryAfter: Duration?

    /// What a report's Retry-After may ask for at most.
    public var retryAfterCap: Duration { maxRetryAfter ?? backoffMax }

    public init(
        duration: Duration = .seconds(60),
        backoffMultiplier: Double = 2,
        backoffMax: Duration = .seconds(600),
        jitter: Double = 0.1,
        honorRetryAfter: Bool = true,
        maxRetryAfter: Duration? = nil
    ) {
        self.duration = duration
        self.backoffMultiplier = backoffMultiplier
        self.backoffMax = backoffMax
        self.jitter = jitter
        self.honorRetryAfter = honorRetryAfter
        self.maxRetryAfter = maxRetryAfter
    }
}

public struct HalfOpenPolicy: Sendable, Equatable {
    /// Probe permits outstanding at once.
    public var probes: Int
    /// Successful probes needed to close.
    public var successesToClose: Int
    /// A probe not heard from for this long reopens the breaker (`probe_timeout`).
    public var maxWait: Duration

    public init(probes: Int = 1, successesToClose: Int = 1, maxWait: Duration = .seconds(30)) {
        self.probes = probes
        self.successesToClose = successesToClose
        self.maxWait = maxWait
    }
}
