/// A breaker's recent latency for `fastest` chains: an average of successful
/// calls weighted by time rather than by count, so a burst of reports moves it
/// no more than the same time of steady traffic, and a figure from long ago
/// is replaced by the next one. Each report pulls the average toward itself
/// by dt / (dt + window), dt being the time since the last report.
struct LatencyAverage: Sendable {
    /// Milliseconds; `nil` until a successful call reports.
    private(set) var milliseconds: Double?
    private(set) var updatedAt: Timestamp?
    /// From when the figure counts as stale: a window after the last report
    /// or renewing call (one comparison per route instead of two durations).
    private var refreshDue = Timestamp(nanoseconds: .min)
    /// The time constant: the smallest `window` of the `fastest` chains it is in.
    var window: Duration = .seconds(10)

    /// A route sent this member one call only to renew its figure.
    mutating func refreshSent(at now: Timestamp) { refreshDue = max(refreshDue, now + window) }

    mutating func add(_ latency: Duration, at now: Timestamp) {
        let sample = Double(latency.nanosecondsClamped) / 1e6
        defer {
            updatedAt = now
            refreshDue = max(refreshDue, now + window)
        }
        guard let current = milliseconds, let last = updatedAt else {
            milliseconds = sample
            return
        }
        let dt = Double(max(.zero, now - last).nanosecondsClamped)
        let share = dt / (dt + Double(window.nanosecondsClamped))
        milliseconds = current + (sample - current) * share
    }

    /// Whether the figure is missing or older than the window, and no renewing
    /// call went out within the window either.
    func needsRefresh(at now: Timestamp) -> Bool { now >= refreshDue }
}
