import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import Logging
import Prometheus
@testable import FuseboxFleet

/// One sidecar of an in-memory fleet: its engine on its own (skewed) clock,
/// its fleet parts, and its view of the shared database. `sync` is one pass
/// of what FleetService's tasks do while connected, run when the test says.
final class FleetHost: Sendable {
    static let secret = FleetSecret(bytes: Array("fleet-rules-test".utf8) + [UInt8](repeating: 42, count: 32), source: "test")
    static let breaker = "flaky"

    /// Two failures in a row trip; open 2 s without jitter or backoff; one probe; a peer's opening lasts at most 60 s.
    static let policy = BreakerPolicy(
        trip: TripPolicy(consecutiveFailures: 2, failureRate: nil, window: nil),
        open: OpenPolicy(duration: .seconds(2), backoffMultiplier: 1, jitter: 0, maxRetryAfter: .seconds(60)),
        halfOpen: HalfOpenPolicy(probes: 1, successesToClose: 1, maxWait: .seconds(60))
    )

    let name: String
    let database: MemoryFleetDatabase
    let clock: SkewedClock
    let engine: Engine
    let series: FleetSeries
    let openings: FleetOpenings
    let budgets: BudgetLeases
    let store: MemoryFleetStore
    let shared: Set<String>

    init(_ name: String, _ database: MemoryFleetDatabase, skew: Duration = .zero, policy: BreakerPolicy = FleetHost.policy) throws {
        self.name = name
        self.database = database
        let sink = LateSink()
        clock = SkewedClock(truth: database.clock, skew: skew)
        engine = try Engine(configuration: EngineConfiguration(breakers: [BreakerDefinition(name: Self.breaker, policy: policy)]),
                            clock: clock, sink: sink, seed: 1)
        series = FleetSeries(registry: PrometheusCollectorRegistry())
        let logger = Logger(label: "fleet-test-\(name)")
        openings = FleetOpenings(fleet: database.fleet, member: name, secret: Self.secret, engine: engine, series: series, clock: clock,
                                 logger: logger)
        budgets = BudgetLeases(engine: engine, series: series, clock: clock, lease: .seconds(5), assumedPeers: 2, logger: logger)
        sink.add { [openings, budgets] event in
            openings.note(event)
            budgets.note(event)
        }
        store = database.store(member: name)
        shared = [Self.breaker]
    }

    /// What FleetService does on connecting: the database's clock, the table's openings, probes gated.
    func connect() async throws {
        try await openings.databaseClock.measure(store)
        try await openings.catchUp(store, shared: shared)
        engine.gateProbes(shared, true)
    }

    /// Publishes what was decided here, applies what peers sent, and claims
    /// a probe the engine's scheduler found due (its pass, then the offer).
    func sync() async throws {
        try await openings.publishPending(store, shared: shared)
        try await openings.publishStreaks(store, shared: shared)
        deliver()
        openings.offer(engine.runDue().fleetCandidates)
        try await openings.claimProbes(store)
    }

    /// Applies what arrived on the channel since the last look.
    func deliver() {
        for payload in database.take(name) { openings.received(payload, shared: shared) }
    }

    func fail(times: Int = 1) throws {
        for _ in 0..<times { _ = try engine.record(Self.breaker, .failure(status: 503)) }
    }

    var state: BreakerState { (try? engine.snapshot(Self.breaker).first?.state) ?? .closed }
    var openUntil: Timestamp? { try? engine.snapshot(Self.breaker).first?.openUntil }

    /// A call as traffic makes it: allowed or not, and if allowed reported with `succeeded`.
    func call(succeeded: Bool) throws -> Bool {
        let decision = try engine.acquire(Self.breaker)
        guard decision.allowed, let permit = decision.permit else { return false }
        _ = try engine.report(permit.id, succeeded ? .success() : .failure(status: 503))
        return true
    }
}

/// Every host of a test, synced in turn as their fleet tasks would be.
func syncAll(_ hosts: [FleetHost], rounds: Int = 2) async throws {
    for _ in 0..<rounds {
        for host in hosts { try await host.sync() }
    }
}
