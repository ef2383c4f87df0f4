/// One state change, with the statistics as they stood at that moment (taken
/// before the change clears them), so a log line or a stored row explains the
/// transition on its own.
public struct Transition: Sendable, Equatable {
    public var breaker: String
    public var from: BreakerState
    public var to: BreakerState
    public var at: Timestamp
    public var reason: TransitionReason
    /// The breaker's generation after the change.
    public var generation: UInt64
    /// Failures in a row when it happened.
    public var failureCount: Int
    public var callsInWindow: Int
    public var failuresInWindow: Int
    public var failureRate: Double
    public var slowCallRate: Double
    public var lastError: String?
    public var lastStatus: Int?
    /// When the breaker may be probed again; set exactly when `to == .open`.
    public var openUntil: Timestamp?
    /// The sidecar's own probe that decided it (active probes), if one did.
    public var probe: ProbeResult?
    /// The fleet member that sent the decision applied here (reason `fleet`), as it named itself.
    public var origin: String?

    public init(
        breaker: String, from: BreakerState, to: BreakerState, at: Timestamp, reason: TransitionReason,
        generation: UInt64, failureCount: Int = 0, callsInWindow: Int = 0, failuresInWindow: Int = 0,
        failureRate: Double = 0, slowCallRate: Double = 0, lastError: String? = nil, lastStatus: Int? = nil,
        openUntil: Timestamp? = nil
    ) {
        self.breaker = breaker
        self.from = from
        self.to = to
        self.at = at
        self.reason = reason
        self.generation = generation
        self.failureCount = failureCount
        self.callsInWindow = callsInWindow
        self.failuresInWindow = failuresInWindow
        self.failureRate = failureRate
        self.slowCallRate = slowCallRate
        self.lastError = lastError
        self.lastStatus = lastStatus
        self.openUntil = openUntil
    }
}
