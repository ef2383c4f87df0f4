import FuseboxCore
import FuseboxTelemetry
import Logging
import Synchronization

/// Fleet-scoped budgets, after Doorman: each sidecar leases a share of a
/// limit's capacity from PostgreSQL and enforces it with its own buckets.
/// Shares follow demand (attempts per second, granted or refused), and a
/// share is granted only out of what the other live leases leave, so the
/// shares never add up to more than the capacity. Without PostgreSQL a
/// sidecar keeps its lease until it lapses, then takes capacity ÷ the peers
/// it last knew of (never the whole capacity).
final class BudgetLeases: Sendable {
    struct Lease: Sendable {
        var share: Double
        var expires: Timestamp
        var peers: Int
    }

    private let engine: Engine
    private let series: FleetSeries
    private let clock: any BreakerClock
    private let logger: Logger
    private let leaseLength: Duration
    private let assumedPeers: Int
    private let attempts = Mutex<[String: Int]>([:])
    /// Demand per breaker, smoothed over renewals: a sidecar with a request every
    /// two seconds must not swing between none and all of its part each second.
    private let demand = Mutex<[String: Double]>([:])
    static let smoothing = 0.25
    private let leases = Mutex<[String: Lease]>([:])
    private let countedSince: Mutex<Timestamp>

    init(engine: Engine, series: FleetSeries, clock: any BreakerClock, lease: Duration,
         assumedPeers: Int, logger: Logger) {
        self.engine = engine
        self.series = series
        self.clock = clock
        self.leaseLength = lease
        self.assumedPeers = assumedPeers
        self.logger = logger
        countedSince = Mutex(clock.now())
    }

    static func key(_ limit: FleetBudgetLimit) -> String { limit.breaker + "\u{0}" + kindName(limit.kind) }

    static func kindName(_ kind: FleetScopedBudgets) -> String {
        switch kind {
        case .maxInFlight: return "max_in_flight"
        case .rate: return "rate"
        default: return "tokens"
        }
    }

    /// Demand: every acquire of a breaker with a fleet budget, granted (reported) or refused by a budget.
    func note(_ event: EngineEvent) {
        switch event {
        case .recorded(let call): attempts.withLock { $0[call.breaker, default: 0] += 1 }
        case .rejected(let breaker, _, let reason, _) where reason != .open:
            attempts.withLock { $0[breaker, default: 0] += 1 }
        default: break
        }
    }

    /// Renews every fleet budget's lease with this sidecar's demand since the last renewal.
    func refresh(_ store: some FleetStore) async throws {
        let limits = engine.fleetBudgetLimits
        guard !limits.isEmpty else { return }
        let now = clock.now()
        let elapsed = max(0.001, (now - countedSince.withLock { since in defer { since = now }; return since }).secondsDouble)
        let counts = attempts.withLock { all in defer { all.removeAll(keepingCapacity: true) }; return all }
        var smoothed: [String: Double] = [:]
        demand.withLock { all in
            for breaker in Set(limits.map(\.breaker)) {
                let now = Double(counts[breaker] ?? 0) / elapsed
                let value = all[breaker].map { $0 + Self.smoothing * (now - $0) } ?? now
                all[breaker] = value
                smoothed[breaker] = value
            }
        }
        for limit in limits {
            let demand = smoothed[limit.breaker] ?? 0
            let lease = try await renew(limit, demand: demand, now: now, store)
            leases.withLock { $0[Self.key(limit)] = lease }
            apply(limit, share: lease.share)
        }
    }

    private func renew(_ limit: FleetBudgetLimit, demand: Double, now: Timestamp, _ store: some FleetStore) async throws -> Lease {
        let capacity = Double(limit.capacity)
        let whole = limit.kind == .maxInFlight
        // Expiries in the database's clock, so a skewed host neither drops live leases nor keeps dead ones.
        let renewal = BudgetRenewal(breaker: limit.breaker, kind: Self.kindName(limit.kind), demand: demand, capacity: capacity,
                                    term: leaseLength)
        let granted = try await store.renewBudget(renewal) { others in
            Self.share(capacity: capacity, demand: demand, others: others, whole: whole)
        }
        return Lease(share: granted.share, expires: now + leaseLength, peers: granted.peers)
    }

    /// The share this sidecar may take: its demand's part of the capacity
    /// (an equal part when nobody asks), out of what others leave.
    static func share(capacity: Double, demand: Double, others: OtherLeases, whole: Bool) -> Double {
        let total = demand + others.demand
        let fair = total > 0 ? capacity * demand / total : capacity / Double(others.count + 1)
        let free = max(0, capacity - others.share)
        let granted = min(fair, free)
        return whole ? granted.rounded(.down) : granted
    }

    /// PostgreSQL is away: leases that lapsed fall back to capacity ÷ the peers last known.
    func fallBack() {
        let now = clock.now()
        for limit in engine.fleetBudgetLimits {
            let key = Self.key(limit)
            let safe = leases.withLock { all -> Double? in
                let lease = all[key]
                if let lease, lease.expires > now { return nil }
                let peers = max(1, lease?.peers ?? assumedPeers)
                let share = Double(limit.capacity) / Double(peers)
                let value = limit.kind == .maxInFlight ? share.rounded(.down) : share
                if lease?.share == value { return nil }
                all[key] = Lease(share: value, expires: lease?.expires ?? now, peers: peers)
                return value
            }
            if let safe { apply(limit, share: safe) }
        }
    }

    private func apply(_ limit: FleetBudgetLimit, share: Double) {
        engine.setBudgetShare(limit.breaker, limit.kind, share)
        series.share(breaker: limit.breaker, kind: Self.kindName(limit.kind), share)
    }
}
