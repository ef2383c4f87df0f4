import FuseboxCore

/// Settings that are valid but probably not what was meant.
public enum ConfigNotes {
    public static func notes(for config: Configuration) -> [String] {
        var notes: [String] = []
        for breaker in config.engine.breakers {
            let trip = breaker.policy.trip
            if trip.window == nil, trip.failureRate != nil || trip.slowCall != nil {
                notes.append("\(breaker.name): failure_rate and slow_call need a window; with window off only consecutive_failures trips")
            }
            if trip.consecutiveFailures == nil, trip.window == nil {
                notes.append("\(breaker.name): no trip rule is on; only Retry-After and operators can open it")
            }
            if breaker.policy.halfOpen.successesToClose > breaker.policy.halfOpen.probes {
                notes.append("\(breaker.name): successes_to_close exceeds probes; probes are issued again as each one succeeds")
            }
        }
        return notes
    }
}
