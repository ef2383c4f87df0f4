import FuseboxCore
import FuseboxWire
import Prometheus
import Synchronization

/// Every Prometheus series Fusebox exposes (docs/metrics.md lists them).
///
/// Series are made up front for the configured breakers, chains, ops, codes
/// and outcomes, so label values never come from what a client sends.
/// Counters move from the engine's events; gauges that describe state (the
/// breaker state, rates, permits in flight) are read from a snapshot when
/// Prometheus scrapes, which keeps them off the decision path entirely.
public final class FuseboxMetrics: EngineEventSink, Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let breakers = Mutex<[String: BreakerSeries]>([:])
    private let chains = Mutex<[String: ChainSeries]>([:])
    private let requests: [String: Counter]
    private let protocolErrors: [ErrorCode: Counter]
    private let clients: Gauge
    private let subscriberDrops: Counter
    private let reloads: [Bool: Counter]
    private let lastReload: Gauge
    private let lastReloadTime: Gauge
    public let store: StoreSeries

    static let durationBuckets: [Duration] = [
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]

    public init(version: String, configuration: EngineConfiguration) {
        let registry = self.registry
        requests = Dictionary(uniqueKeysWithValues: (Request.Op.allCases.map(\.rawValue) + ["none"]).map { op in
            (op, registry.counter("fusebox_requests_total", labels: [("op", op)], help: Help.requests))
        })
        protocolErrors = Dictionary(uniqueKeysWithValues: ErrorCode.allCases.map { code in
            (code, registry.counter("fusebox_protocol_errors_total", labels: [("code", code.rawValue)], help: Help.protocolErrors))
        })
        clients = registry.gauge("fusebox_clients_connected", help: "Connections open on the main and admin sockets.")
        subscriberDrops = registry.counter(
            "fusebox_subscriber_events_dropped_total",
            help: "Transition events not delivered to a subscriber whose buffer was full."
        )
        reloads = [
            true: registry.counter("fusebox_config_reloads_total", labels: [("result", "ok")], help: Help.reloads),
            false: registry.counter("fusebox_config_reloads_total", labels: [("result", "failed")], help: Help.reloads),
        ]
        lastReload = registry.gauge(
            "fusebox_config_last_reload_successful",
            help: "1 when the last reload (SIGHUP) was applied or none was asked for, 0 when it was refused and the running configuration kept."
        )
        lastReload.set(to: 1)
        lastReloadTime = registry.gauge(
            "fusebox_config_last_reload_timestamp_seconds", help: "When the last reload was asked for (Unix seconds); 0 before any."
        )
        store = StoreSeries(registry: registry)
        registry.gauge("fusebox_build_info", labels: [("version", version)], help: "Always 1; the version label says which build runs.").set(to: 1)
        configure(configuration)
    }

    /// A reload was asked for: applied (`ok`) or refused.
    public func reloaded(ok: Bool, at: Timestamp) {
        reloads[ok]?.increment()
        lastReload.set(to: ok ? 1 : 0)
        lastReloadTime.set(to: Double(at.milliseconds) / 1_000)
    }

    /// Makes series for new breakers and chains and drops those of removed ones.
    public func configure(_ configuration: EngineConfiguration) {
        let names = Set(configuration.breakers.map(\.name))
        breakers.withLock { current in
            for (name, series) in current where !names.contains(name) {
                series.unregister(from: registry)
                current[name] = nil
            }
            for name in names where current[name] == nil { current[name] = BreakerSeries(name: name, registry: registry) }
        }
        let chainNames = Set(configuration.chains.map(\.name))
        chains.withLock { current in
            for (name, series) in current where !chainNames.contains(name) {
                series.unregister(from: registry)
                current[name] = nil
            }
            for name in chainNames where current[name] == nil { current[name] = ChainSeries(name: name, registry: registry) }
        }
    }

    // MARK: Engine events (counters only)

    public func receive(_ events: [EngineEvent]) {
        for event in events {
            switch event {
            case .transitioned(let t): transitioned(t)
            case .recorded(let call): recorded(call)
            case .rejected(let breaker, _, let reason, _): rejected(breaker: breaker, reason: reason)
            case .dequeued(let breaker, let waited, _, _): breakers.withLock { $0[breaker]?.queueWait.record(waited) }
            case .fellBack(let chain, let from, let to, _): chains.withLock { $0[chain]?.fallback(from: from, to: to, registry: registry) }
            case .exhausted(let chain, _): chains.withLock { $0[chain]?.exhausted.increment() }
            case .permitEnded(let breaker, let how, _): permitEnded(breaker: breaker, how: how)
            case .heldOpen, .operated: break
            }
        }
    }

    func transitioned(_ t: Transition) {
        breakers.withLock { $0[t.breaker]?.transition(from: t.from, to: t.to, registry: registry) }
    }

    func recorded(_ call: RecordedCall) {
        breakers.withLock { all in
            guard let series = all[call.breaker] else { return }
            series.calls[call.outcome]?.increment()
            if let latency = call.latency { series.duration.record(latency) }
        }
    }

    func rejected(breaker: String, reason: RejectionReason) {
        breakers.withLock { all in
            guard let series = all[breaker] else { return }
            series.notPermitted.increment()
            series.budgetRejections[reason]?.increment()
        }
    }

    func permitEnded(breaker: String, how: PermitEnd) {
        breakers.withLock { all in
            guard let series = all[breaker] else { return }
            switch how {
            case .expired: series.expired.increment()
            case .abandoned: series.abandoned.increment()
            case .cancelled: series.calls[.cancelled]?.increment()
            }
        }
    }

    // MARK: Socket events

    public func countRequest(op: String?, error: ErrorCode?) {
        requests[op ?? "none"]?.increment()
        if let error { protocolErrors[error]?.increment() }
    }

    public func clientConnected() { clients.increment() }
    public func clientDisconnected() { clients.decrement() }
    public func subscriberDropped(events: Int) { subscriberDrops.increment(by: Int64(events)) }

    // MARK: Scrape

    /// The exposition text, after setting the state gauges from `snapshots`.
    public func render(_ snapshots: [BreakerSnapshot]) -> [UInt8] {
        breakers.withLock { all in
            for snapshot in snapshots {
                all[snapshot.name]?.show(snapshot)
                all[snapshot.name]?.showBuckets(snapshot, registry: registry)
            }
        }
        return registry.emitToBuffer()
    }
}

enum Help {
    static let requests = "Protocol requests served, by op (none: the line could not be read as a request)."
    static let protocolErrors = "Requests answered with an error, by error code."
    static let reloads = "Configuration reloads asked for (SIGHUP), by result: ok (applied) or failed (refused; the running configuration kept)."
}

/// The series of one breaker.
final class BreakerSeries: Sendable {
    let name: String
    let calls: [Outcome: Counter]
    let duration: DurationHistogram
    let notPermitted: Counter
    let expired: Counter
    let abandoned: Counter
    let states: [BreakerState: Gauge]
    let failureRate: Gauge
    let slowCallRate: Gauge
    let inFlight: Gauge
    /// By budget reason (concurrency, rate, tokens); `open` refusals are not budget ones.
    let budgetRejections: [RejectionReason: Counter]
    let queueDepth: Gauge
    let queueWait: DurationHistogram
    /// Exposed only while the breaker has that budget: a 0 would read as "spent".
    private let buckets = Mutex<(rate: Gauge?, tokens: Gauge?)>((nil, nil))
    private let transitions = Mutex<[String: Counter]>([:])

    static let queueWaitBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
    ]

    init(name: String, registry: PrometheusCollectorRegistry) {
        self.name = name
        let label = [("breaker", name)]
        calls = Dictionary(uniqueKeysWithValues: Outcome.allCases.map { outcome in
            (outcome, registry.counter(
                "fusebox_calls_total", labels: label + [("outcome", outcome.rawValue)],
                help: "Calls reported, by breaker and outcome (expired permits count as timeout)."
            ))
        })
        duration = registry.durationHistogram(
            "fusebox_call_duration_seconds", labels: label, buckets: FuseboxMetrics.durationBuckets,
            help: "How long reported calls took, as the client reported it (or from permit to report)."
        )
        notPermitted = registry.counter("fusebox_not_permitted_total", labels: label, help: "Acquires (and route steps) refused.")
        expired = registry.counter("fusebox_permits_expired_total", labels: label, help: "Permits not reported within permit_ttl, counted as timeouts.")
        abandoned = registry.counter("fusebox_permits_abandoned_total", labels: label, help: "Permits released because their client disconnected.")
        states = Dictionary(uniqueKeysWithValues: BreakerState.allCases.map { state in
            (state, registry.gauge(
                "fusebox_breaker_state", labels: label + [("state", state.rawValue)],
                help: "1 for the state each breaker is in, 0 for the others."
            ))
        })
        failureRate = registry.gauge("fusebox_failure_rate", labels: label, help: "Failure share of the breaker's window (0 to 1).")
        slowCallRate = registry.gauge("fusebox_slow_call_rate", labels: label, help: "Slow-call share of the breaker's window (0 to 1).")
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
    }

    func transition(from: BreakerState, to: BreakerState, registry: PrometheusCollectorRegistry) {
        let key = "\(from.rawValue)>\(to.rawValue)"
        let counter = transitions.withLock { made in
            if let counter = made[key] { return counter }
            let counter = registry.counter(
                "fusebox_transitions_total", labels: [("breaker", name), ("from", from.rawValue), ("to", to.rawValue)],
                help: "State transitions, by breaker and the states left and entered."
            )
            made[key] = counter
            return counter
        }
        counter.increment()
    }

    func show(_ snapshot: BreakerSnapshot) {
        for (state, gauge) in states { gauge.set(to: state == snapshot.state ? 1 : 0) }
        failureRate.set(to: snapshot.window.failureRate)
        slowCallRate.set(to: snapshot.window.slowCallRate)
        inFlight.set(to: Double(snapshot.permitsInFlight))
        queueDepth.set(to: Double(snapshot.queued))
    }

    /// The bucket gauges follow the configuration: made when a budget appears, dropped when it goes.
    func showBuckets(_ snapshot: BreakerSnapshot, registry: PrometheusCollectorRegistry) {
        buckets.withLock { gauges in
            gauges.rate = Self.bucketGauge(
                gauges.rate, value: snapshot.rateAvailable, name: "fusebox_rate_tokens_available",
                help: "Requests the breaker's rate budget would grant now.", breaker: name, registry: registry
            )
            gauges.tokens = Self.bucketGauge(
                gauges.tokens, value: snapshot.tokensAvailable, name: "fusebox_token_budget_available",
                help: "Tokens the breaker's token budget would grant now.", breaker: name, registry: registry
            )
        }
    }

    private static func bucketGauge(
        _ gauge: Gauge?, value: Double?, name: String, help: String, breaker: String, registry: PrometheusCollectorRegistry
    ) -> Gauge? {
        guard let value else {
            if let gauge { registry.unregisterGauge(gauge) }
            return nil
        }
        let shown = gauge ?? registry.gauge(name, labels: [("breaker", breaker)], help: help)
        shown.set(to: value)
        return shown
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        for counter in budgetRejections.values { registry.unregisterCounter(counter) }
        registry.unregisterGauge(queueDepth)
        registry.unregisterDurationHistogram(queueWait)
        buckets.withLock { gauges in
            for gauge in [gauges.rate, gauges.tokens].compactMap({ $0 }) { registry.unregisterGauge(gauge) }
        }
        for counter in calls.values { registry.unregisterCounter(counter) }
        registry.unregisterDurationHistogram(duration)
        for counter in [notPermitted, expired, abandoned] { registry.unregisterCounter(counter) }
        for gauge in Array(states.values) + [failureRate, slowCallRate, inFlight] { registry.unregisterGauge(gauge) }
        transitions.withLock { made in for counter in made.values { registry.unregisterCounter(counter) } }
    }
}

/// The series of one chain.
final class ChainSeries: Sendable {
    let name: String
    let exhausted: Counter
    private let fallbacks = Mutex<[String: Counter]>([:])

    init(name: String, registry: PrometheusCollectorRegistry) {
        self.name = name
        exhausted = registry.counter(
            "fusebox_route_exhausted_total", labels: [("chain", name)],
            help: "Routes no breaker of the chain could serve."
        )
    }

    func fallback(from: String, to: String, registry: PrometheusCollectorRegistry) {
        let key = "\(from)>\(to)"
        let counter = fallbacks.withLock { made in
            if let counter = made[key] { return counter }
            let counter = registry.counter(
                "fusebox_fallbacks_total", labels: [("chain", name), ("from", from), ("to", to)],
                help: "Routes served by a later breaker of the chain than its first."
            )
            made[key] = counter
            return counter
        }
        counter.increment()
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        registry.unregisterCounter(exhausted)
        fallbacks.withLock { made in for counter in made.values { registry.unregisterCounter(counter) } }
    }
}

/// The store's health, mirrored from the writer's own counters at scrape time.
public final class StoreSeries: Sendable {
    private let seen = Mutex((written: 0, errors: 0, dropped: 0))

    public let errors: Counter
    public let dropped: Counter
    public let written: Counter
    public let queueDepth: Gauge
    public let healthy: Gauge

    init(registry: PrometheusCollectorRegistry) {
        errors = registry.counter("fusebox_store_errors_total", help: "Failed attempts to write a batch to the SQLite store.")
        dropped = registry.counter("fusebox_store_dropped_total", help: "Rows given up because the store's queue was full.")
        written = registry.counter("fusebox_store_rows_written_total", help: "Rows committed to the SQLite store.")
        queueDepth = registry.gauge("fusebox_store_queue_depth", help: "Rows waiting to be written to the store.")
        healthy = registry.gauge("fusebox_store_healthy", help: "1 while the last store write succeeded (or the store is off), 0 while writes fail.")
        healthy.set(to: 1)
    }

    /// Moves the counters to the writer's totals.
    public func sync(written: Int, errors: Int, dropped: Int, queued: Int, healthy isHealthy: Bool) {
        seen.withLock { last in
            if written > last.written { self.written.increment(by: Int64(written - last.written)) }
            if errors > last.errors { self.errors.increment(by: Int64(errors - last.errors)) }
            if dropped > last.dropped { self.dropped.increment(by: Int64(dropped - last.dropped)) }
            last = (max(written, last.written), max(errors, last.errors), max(dropped, last.dropped))
        }
        queueDepth.set(to: Double(queued))
        healthy.set(to: isHealthy ? 1 : 0)
    }
}

extension PrometheusCollectorRegistry {
    /// The registry's calls with the full metric name and its help text.
    package func counter(_ name: String, labels: [(String, String)] = [], help: String) -> Counter {
        makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }

    package func gauge(_ name: String, labels: [(String, String)] = [], help: String) -> Gauge {
        makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    package func durationHistogram(_ name: String, labels: [(String, String)], buckets: [Duration], help: String) -> DurationHistogram {
        makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
