/// The states of one breaker. The last three are only entered by an operator
/// (`force`) and left by `force auto` or `reset`.
public enum BreakerState: String, Sendable, CaseIterable, Hashable {
    case closed
    case open
    case halfOpen = "half_open"
    /// Rejects every call; no timer moves it.
    case forcedOpen = "forced_open"
    /// Allows every call and records nothing toward a trip.
    case disabled
    /// Allows every call, records statistics, never trips.
    case metricsOnly = "metrics_only"

    /// Whether the provider is considered unavailable (for incidents and routing).
    public var isTripped: Bool {
        switch self {
        case .open, .halfOpen, .forcedOpen: return true
        case .closed, .disabled, .metricsOnly: return false
        }
    }
}

/// Why a transition happened: a closed set, so logs, metrics and the store can
/// be grouped by it.
public enum TransitionReason: String, Sendable, CaseIterable, Hashable {
    case consecutiveFailures = "consecutive_failures"
    case failureRate = "failure_rate"
    case slowCallRate = "slow_call_rate"
    case retryAfter = "retry_after"
    case openElapsed = "open_elapsed"
    case probeSucceeded = "probe_succeeded"
    case probeFailed = "probe_failed"
    case probeTimeout = "probe_timeout"
    case forced
    case reset
    case configReload = "config_reload"
    /// A peer of the fleet decided it (fleet mode): its opening, its probe's result, or its operator.
    case fleet
    /// A check of a closed breaker (`probe.closed_interval`) failed.
    case probe
    /// The state recorded in the store before a restart, taken up again at start.
    case restored
}

/// What an operator may force a breaker into. `auto` hands it back to the
/// state machine, starting closed.
public enum ForcedMode: String, Sendable, CaseIterable {
    case open
    case closed
    case disabled
    case metricsOnly = "metrics_only"
    case auto
}
