import FuseboxCore
import Prometheus
import Synchronization

/// The series of one breaker. Every series a closed set of label values can
/// name is made at once (so `increase()` sees its first event); the limit
/// gauges exist only while the breaker has that limit.
final class BreakerSeries: Sendable {
    let name: String
    /// This breaker's own registry (`ExpositionMerge` says why): dropped whole with the breaker.
    let registry = PrometheusCollectorRegistry()
    let calls: [Outcome: Counter]
    /// Split by outcome, so 30 s timeouts do not inflate the successes' p99.
    let duration: [Outcome: DurationHistogram]
    let timeToFirstByte: DurationHistogram
    let notPermitted: [RejectionReason: Counter]
    let expired: Counter
    let abandoned: Counter
    let states: [BreakerState: Gauge]
    let failureRatio: Gauge
    let slowCallRatio: Gauge
    let windowCalls: Gauge
    let inFlight: Gauge
    /// By budget reason (concurrency, rate, tokens); `open` refusals are not budget ones.
    let budgetRejections: [RejectionReason: Counter]
    let queueDepth: Gauge
    let queueWait: DurationHistogram
    /// Gauges shown only while the breaker has the budget they describe: a 0 would read as "spent" or "no room".
    private let optional = Mutex<[String: Gauge]>([:])
    private let transitions = Mutex<[String: Counter]>([:])

    static let queueWaitBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
    ]

    /// The transitions the state machine makes on its own (and a fleet peer for it), made up front.
    /// Operator, reset and reload transitions are made when they first happen.
    static let automaticTransitions: [(BreakerState, BreakerState, [TransitionReason])] = [
        (.closed, .open, [.consecutiveFailures, .failureRate, .slowCallRate, .retryAfter, .fleet]),
        (.open, .halfOpen, [.openElapsed, .fleet]),
        (.halfOpen, .closed, [.probeSucceeded, .fleet]),
        (.halfOpen, .open, [.probeFailed, .probeTimeout, .retryAfter, .fleet]),
    ]

    init(name: String) {
        self.name = name
        let registry = self.registry
        let label = [("breaker", name)]
        calls = Dictionary(uniqueKeysWithValues: Outcome.allCases.map { outcome in
            (outcome, registry.counter(
                "fusebox_calls_total", labels: label + [("outcome", outcome.rawValue)],
                help: "Calls reported, by breaker and outcome (expired permits count as timeout)."
            ))
        })
        duration = Dictionary(uniqueKeysWithValues: Outcome.allCases.map { outcome in
            (outcome, registry.durationHistogram(
                "fusebox_call_duration_seconds", labels: label + [("outcome", outcome.rawValue)], buckets: FuseboxMetrics.durationBuckets,
                help: "How long reported calls took, as the client reported it (or from permit to report), by outcome."
            ))
        })
        timeToFirstByte = registry.durationHistogram(
            "fusebox_time_to_first_byte_seconds", labels: label, buckets: FuseboxMetrics.durationBuckets,
            help: "Time to the first byte of streamed answers, from reports that carry ttfb_ms (the clients' transports and fetch)."
        )
        notPermitted = Dictionary(uniqueKeysWithValues: RejectionReason.allCases.map { reason in
            (reason, registry.counter(
                "fusebox_not_permitted_total", labels: label + [("reason", reason.rawValue)],
                help: "Acquires (and route steps) refused, by reason: open, or the budget that refused (concurrency, rate, tokens)."
            ))
        })
        expired = registry.counter("fusebox_permits_expired_total", labels: label, help: "Permits neither reported nor renewed within permit_ttl, counted as timeouts.")
        abandoned = registry.counter("fusebox_permits_abandoned_total", labels: label, help: "Permits released because their client disconnected.")
        states = Dictionary(uniqueKeysWithValues: BreakerState.allCases.map { state in
            (state, registry.gauge(
                "fusebox_breaker_state", labels: label + [("state", state.rawValue)],
                help: "1 for the state each breaker is in, 0 for the others."
            ))
        })
        failureRatio = registry.gauge(
            "fusebox_failure_ratio", labels: label,
            help: "Failure share of the breaker's window (0 to 1); -1 while the window holds fewer than minimum_calls."
        )
        slowCallRatio = registry.gauge(
            "fusebox_slow_call_ratio", labels: label,
            help: "Slow-call share of the breaker's window (0 to 1); -1 while the window holds fewer than minimum_calls."
        )
        windowCalls = registry.gauge("fusebox_window_calls", labels: label, help: "Calls in the breaker's statistics window.")
        inFlight = registry.gauge("fusebox_permits_in_flight", labels: label, help: "Permits granted and not yet reported.")
        budgetRejections = Dictionary(uniqueKeysWithValues: RejectionReason.allCases.filter { $0 != .open }.map { reason in
            (reason, registry.counter(
                "fusebox_budget_rejections_total", labels: label + [("reason", reason.rawValue)],
                help: "Acquires and route steps refused by a budget: concurrency (max_in_flight), rate or tokens."
            ))
        })
        queueDepth = registry.gauge("fusebox_queue_depth", labels: label, help: "Acquires waiting in the breaker's queue for a slot under max_in_flight.")
        queueWait = registry.durationHistogram(
            "fusebox_queue_wait_seconds", labels: label, buckets: Self.queueWaitBuckets,
            help: "How long queued acquires waited, whether granted, refused, timed out or withdrawn."
        )
        states[.closed]?.set(to: 1)
        for (from, to, reasons) in Self.automaticTransitions {
            for reason in reasons { _ = transitionCounter(from: from, to: to, reason: reason) }
        }
    }

    func transition(_ t: Transition) {
        transitionCounter(from: t.from, to: t.to, reason: t.reason).increment()
    }

    private func transitionCounter(from: BreakerState, to: BreakerState, reason: TransitionReason) -> Counter {
        let key = "\(from.rawValue)>\(to.rawValue)>\(reason.rawValue)"
        return transitions.withLock { made in
            if let counter = made[key] { return counter }
            let counter = registry.counter(
                "fusebox_transitions_total",
                labels: [("breaker", name), ("from", from.rawValue), ("to", to.rawValue), ("reason", reason.rawValue)],
                help: "State transitions, by breaker, the states left and entered, and why."
            )
            made[key] = counter
            return counter
        }
    }

    func show(_ snapshot: BreakerSnapshot) {
        for (state, gauge) in states { gauge.set(to: state == snapshot.state ? 1 : 0) }
        // Below minimum_calls the ratio means nothing yet (one failure would read 1.0): -1, as resilience4j does.
        let enough = snapshot.window.calls >= snapshot.policy.trip.minimumCalls
        failureRatio.set(to: enough ? snapshot.window.failureRate : -1)
        slowCallRatio.set(to: enough ? snapshot.window.slowCallRate : -1)
        windowCalls.set(to: Double(snapshot.window.calls))
        inFlight.set(to: Double(snapshot.permitsInFlight))
        queueDepth.set(to: Double(snapshot.queued))
        let budget = snapshot.policy.budget
        optional.withLock { gauges in
            let shown: [(String, Double?, String)] = [
                ("fusebox_rate_tokens_available", snapshot.rateAvailable, "Requests the breaker's rate budget would grant now."),
                ("fusebox_token_budget_available", snapshot.tokensAvailable, "Tokens the breaker's token budget would grant now."),
                ("fusebox_max_in_flight", budget.maxInFlight.map(Double.init), "The breaker's max_in_flight: permits out at once at most."),
                ("fusebox_queue_max", budget.queue.map { Double($0.max) }, "Acquires the breaker's queue holds at most."),
                ("fusebox_rate_capacity", budget.rate.map { Double($0.amount) }, "Requests the breaker's rate budget holds when full (per its period)."),
                ("fusebox_token_capacity", budget.tokens.map { Double($0.amount) }, "Tokens the breaker's token budget holds when full (per its period)."),
            ]
            for (metric, value, help) in shown {
                guard let value else {
                    if let gauge = gauges.removeValue(forKey: metric) { registry.unregisterGauge(gauge) }
                    continue
                }
                let gauge = gauges[metric] ?? registry.gauge(metric, labels: [("breaker", name)], help: help)
                gauges[metric] = gauge
                gauge.set(to: value)
            }
        }
    }
}
