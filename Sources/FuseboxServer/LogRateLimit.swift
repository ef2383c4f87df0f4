import Synchronization

/// At most one log line per `interval` for a noisy event (refused
/// connections), carrying how many were not logged since: a flood of
/// refused peers must not flood the log.
public final class LogRateLimit: Sendable {
    private struct State {
        var nextAllowed: ContinuousClock.Instant?
        var suppressed = 0
    }

    private let interval: Duration
    private let state = Mutex(State())

    public init(interval: Duration = .seconds(10)) { self.interval = interval }

    /// nil when this one is to be dropped; otherwise how many were dropped before it.
    func admit(now: ContinuousClock.Instant = .now) -> Int? {
        state.withLock { state in
            if let next = state.nextAllowed, now < next {
                state.suppressed += 1
                return nil
            }
            defer { state.suppressed = 0 }
            state.nextAllowed = now + interval
            return state.suppressed
        }
    }
}
