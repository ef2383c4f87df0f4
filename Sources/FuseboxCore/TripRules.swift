/// The trip decision, apart from the statistics it reads (Polly's "behavior").
struct TripRules: Sendable {
    let policy: TripPolicy

    /// The rule that holds for these statistics, if any; checked in the order
    /// consecutive failures, failure rate, slow-call rate.
    func reason(consecutiveFailures: Int, window: HealthTotals) -> TransitionReason? {
        if let limit = policy.consecutiveFailures, consecutiveFailures >= limit {
            return .consecutiveFailures
        }
        guard policy.window != nil, window.calls >= policy.minimumCalls, window.calls > 0 else { return nil }
        if let rate = policy.failureRate, window.failureRate >= rate {
            return .failureRate
        }
        if let slow = policy.slowCall, window.slow > 0, window.slowCallRate >= slow.rate {
            return .slowCallRate
        }
        return nil
    }
}
