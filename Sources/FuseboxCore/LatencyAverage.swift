/// A breaker's recent latency for `fastest` chains: an average of successful
/// calls weighted by time rather than by count, so a burst of reports moves it
/// no more than the same time of steady traffic, and a figure from long ago
/// is replaced by the next one. Each report pulls the average toward itself
/// by dt / (dt + window), dt being the time since the last report.
struct LatencyAverage: Sendable {
    /// Milliseconds; `nil` until a successful call reports.
    private(set) var milliseconds: Double?
    private(set) var updatedAt: Timestamp?
    /// When a route last sent this member a call only to renew the figure.
    var refreshSentAt: Timestamp?
    /// The time constant: the smallest `window` of the `fastest` chains it is in.
    var window: Duration = .seconds(10)

    mutating func add(_ latency: Duration, at now: Timestamp) {
        let sample = Double(latency.nanosecondsClamped) / 1e6
        defer { updatedAt = now }
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
    func needsRefresh(at now: Timestamp) -> Bool {
        if let sent = refreshSentAt, now - sent < window { return false }
        guard let updatedAt, milliseconds != nil else { return true }
        return now - updatedAt >= window
    }
}
