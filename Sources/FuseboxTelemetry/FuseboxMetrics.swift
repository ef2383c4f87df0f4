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
    private let probes = Mutex<[String: ProbeSeries]>([:])
    private let requests: [String: Counter]
    private let requestDurations: [String: DurationHistogram]
    private let clientFailOpen: Counter
    private let logDropped: Counter
    private let logDroppedSeen = Mutex(0)
    private let process: ProcessMetrics
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

    /// Deciding and encoding one request takes microseconds; the top buckets catch lock contention and stalls.
    static let requestBuckets: [Duration] = [
        .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
    ]

    public init(version: String, configuration: EngineConfiguration, process: ProcessMetrics = ProcessMetrics()) {
        let registry = self.registry
        self.process = process
        requests = Dictionary(uniqueKeysWithValues: (Request.Op.allCases.map(\.rawValue) + ["none"]).map { op in
            (op, registry.counter("fusebox_requests_total", labels: [("op", op)], help: Help.requests))
        })
        requestDurations = Dictionary(uniqueKeysWithValues: Request.Op.allCases.map(\.rawValue).map { op in
            (op, registry.durationHistogram(
                "fusebox_request_duration_seconds", labels: [("op", op)], buckets: Self.requestBuckets,
                help: "How long the sidecar took to decide and encode a request, by op (queue waits and socket time excluded)."
            ))
        })
        clientFailOpen = registry.counter(
            "fusebox_client_fail_open_total",
            help: "Calls clients let through without a breaker (the sidecar late or unreachable), as they told it when they next connected."
        )
        logDropped = registry.counter(
            "fusebox_log_lines_dropped_total", help: "Log lines dropped because the log destination fell 100,000 lines behind."
        )
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
            help: "1 when the last reload (SIGHUP or a changed file) was applied or none was asked for, 0 when it was refused and the running configuration kept."
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
        // New series are made outside the lock: events of the running breakers keep flowing meanwhile.
        let names = Set(configuration.breakers.map(\.name))
        let known = breakers.withLock { Set($0.keys) }
        let made = names.subtracting(known).map { BreakerSeries(name: $0) }
        breakers.withLock { current in
            for name in current.keys where !names.contains(name) { current[name] = nil }
            for series in made where current[series.name] == nil { current[series.name] = series }
        }
        let probed = Set(configuration.breakers.filter { $0.policy.probe != nil }.map(\.name))
        probes.withLock { current in
            for name in current.keys where !probed.contains(name) { current[name] = nil }
            for name in probed where current[name] == nil { current[name] = ProbeSeries(breaker: name) }
        }
        let chainNames = Set(configuration.chains.map(\.name))
        chains.withLock { current in
            for (name, series) in current where !chainNames.contains(name) {
                series.unregister(from: registry)
                current[name] = nil
            }
            for chain in configuration.chains {
                if let series = current[chain.name] {
                    series.prepare(members: chain.breakers, registry: registry)
                } else {
                    current[chain.name] = ChainSeries(name: chain.name, members: chain.breakers, registry: registry)
                }
            }
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
            case .exhausted(let chain, let reason, _): chains.withLock { $0[chain]?.exhausted[reason]?.increment() }
            case .permitEnded(let breaker, let how, _): permitEnded(breaker: breaker, how: how)
            case .probed(let breaker, let result, _, _): probes.withLock { $0[breaker]?.record(result) }
            case .preferred(let chain, _, _, _): chains.withLock { $0[chain]?.switches.increment() }
            case .heldOpen, .operated, .paused: break
            }
        }
    }

    func transitioned(_ t: Transition) {
        breakers.withLock { $0[t.breaker]?.transition(t) }
    }

    func recorded(_ call: RecordedCall) {
        breakers.withLock { all in
            guard let series = all[call.breaker] else { return }
            series.calls[call.outcome]?.increment()
            if let latency = call.latency { series.duration[call.outcome]?.record(latency) }
            if let firstByte = call.timeToFirstByte { series.timeToFirstByte.record(firstByte) }
        }
    }

    func rejected(breaker: String, reason: RejectionReason) {
        breakers.withLock { all in
            guard let series = all[breaker] else { return }
            series.notPermitted[reason]?.increment()
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

    public func countRequest(op: String?, error: ErrorCode?, took: Duration? = nil) {
        requests[op ?? "none"]?.increment()
        if let error { protocolErrors[error]?.increment() }
        if let op, let took { requestDurations[op]?.record(took) }
    }

    /// A route along `chain` (a configured one: unknown chains are answered with an error first).
    public func countRoute(chain: String) {
        chains.withLock { $0[chain]?.routes.increment() }
    }

    public func clientsFailedOpen(_ calls: Int) { clientFailOpen.increment(by: Int64(calls)) }

    /// Moves the dropped-lines counter to the log sink's total (at scrape).
    public func syncLogDropped(_ total: Int) {
        logDroppedSeen.withLock { seen in
            if total > seen { logDropped.increment(by: Int64(total - seen)) }
            seen = max(seen, total)
        }
    }

    public func clientConnected() { clients.increment() }
    public func clientDisconnected() { clients.decrement() }
    public func subscriberDropped(events: Int) { subscriberDrops.increment(by: Int64(events)) }

    // MARK: Scrape

    /// The exposition text, after setting the state gauges from `snapshots`.
    public func render(_ snapshots: [BreakerSnapshot]) -> [UInt8] {
        let (breakerSeries, probeSeries) = (breakers.withLock { $0 }, probes.withLock { $0 })
        for snapshot in snapshots { breakerSeries[snapshot.name]?.show(snapshot) }
        // Configuration order (the snapshots'), then any series no snapshot named, so a scrape reads the same way each time.
        let listed = snapshots.map(\.name)
        let names = listed + Set(breakerSeries.keys).union(probeSeries.keys).subtracting(listed).sorted()
        let registries = [registry] + names.compactMap { breakerSeries[$0]?.registry } + names.compactMap { probeSeries[$0]?.registry }
        return ExpositionMerge.merge(registries.map { $0.emitToBuffer() }) + process.exposition()
    }
}

enum Help {
    static let requests = "Protocol requests served, by op (none: the line could not be read as a request)."
    static let protocolErrors = "Requests answered with an error, by error code."
    static let reloads = "Configuration reloads asked for (SIGHUP, or a changed file with watch_config), by result: ok (applied) or failed (refused; the running configuration kept)."
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
