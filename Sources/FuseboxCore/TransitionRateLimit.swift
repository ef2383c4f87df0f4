/// A cap on how often one breaker may change state: the times of its latest
/// `limit` transitions in a ring, so "were there `limit` in the last minute?"
/// is one comparison. A client that forces open/half-open/closed cycles
/// (a forged 503 with `retry_after_ms: 0`, then a success) could otherwise
/// write transitions as fast as it sends lines, filling log and store.
struct TransitionRateLimit: Sendable {
    static let window: Duration = .seconds(60)

    private var times: [Timestamp]
    private var oldest = 0
    /// Set while the breaker is held open by the cap, so it is said once.
    var announced = false

    init(limit: Int?) {
        times = Array(repeating: Timestamp(nanoseconds: .min), count: limit ?? 0)
    }

    var limit: Int? { times.isEmpty ? nil : times.count }

    mutating func note(_ at: Timestamp) {
        guard !times.isEmpty else { return }
        times[oldest] = at
        oldest = (oldest + 1) % times.count
        announced = false
    }

    /// When the next transition may happen, or nil when it may now.
    func heldUntil(at now: Timestamp) -> Timestamp? {
        guard !times.isEmpty else { return nil }
        let free = times[oldest] + Self.window
        return now < free ? free : nil
    }
}
