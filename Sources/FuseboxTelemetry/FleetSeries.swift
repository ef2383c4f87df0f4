import Prometheus
import Synchronization

/// Fleet mode's health: the link to PostgreSQL, how fast openings travel,
/// the shipper's progress and each fleet budget's share.
public final class FleetSeries: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let connected: Gauge
    private let propagation: DurationHistogram
    private let shipped: Counter
    private let shipLag: Gauge
    private let published: Counter
    private let applied: Counter
    private let refused: [String: Counter]
    private let shares = Mutex<[String: Gauge]>([:])

    static let delayBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5),
    ]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        connected = registry.gauge("fusebox_fleet_connected", help: "1 while this sidecar's link to the fleet's PostgreSQL is up, else 0.")
        propagation = registry.durationHistogram(
            "fusebox_fleet_propagation_seconds", labels: [], buckets: Self.delayBuckets,
            help: "From a peer publishing a breaker's state to this sidecar applying it."
        )
        shipped = registry.counter("fusebox_fleet_shipped_rows_total", help: "Store rows copied to PostgreSQL (re-sent buckets count again).")
        shipLag = registry.gauge(
            "fusebox_fleet_ship_lag_seconds", help: "Seconds since the shipper last had every local row in PostgreSQL; 0 when caught up."
        )
        published = registry.counter("fusebox_fleet_published_total", help: "Breaker states this sidecar published to the fleet.")
        applied = registry.counter("fusebox_fleet_applied_total", help: "Peers' breaker states this sidecar applied.")
        // Every reason up front, so a dashboard sees 0 rather than no series.
        refused = Dictionary(uniqueKeysWithValues: Self.refusalReasons.map { reason in
            (reason, registry.counter(
                "fusebox_fleet_messages_refused_total", labels: [("reason", reason)],
                help: "Messages on the fleet channel not applied: unsigned, malformed, signature (wrong seal), stale or replayed."
            ))
        })
    }

    public static let refusalReasons = ["unsigned", "malformed", "signature", "stale", "replayed"]

    public func link(up: Bool) { connected.set(to: up ? 1 : 0) }
    public func propagated(_ delay: Duration) { propagation.record(max(.zero, delay)) }
    public func shippedRows(_ count: Int) { shipped.increment(by: Int64(count)) }
    public func shipLag(seconds: Double) { shipLag.set(to: seconds) }
    public func publishedState() { published.increment() }
    public func appliedState() { applied.increment() }
    public func refusedMessage(_ reason: String) { refused[reason]?.increment() }

    /// This sidecar's share of a fleet budget (`kind`: max_in_flight, rate or tokens), in the limit's own units.
    public func share(breaker: String, kind: String, _ value: Double) {
        let gauge = shares.withLock { all in
            let key = breaker + "\u{0}" + kind
            if let existing = all[key] { return existing }
            let made = registry.gauge(
                "fusebox_fleet_budget_share", labels: [("breaker", breaker), ("budget", kind)],
                help: "This sidecar's leased share of a fleet-scoped budget, in the budget's units (per period, or permits)."
            )
            all[key] = made
            return made
        }
        gauge.set(to: value)
    }
}
