import FuseboxCore
import Synchronization
@testable import FuseboxFleet

/// The fleet's tables and channel in memory, on a manual clock: what
/// `PostgresFleetStore`'s statements do, for testing the fleet's rules
/// without a database. The PostgreSQL suite (tests/fleet) proves the SQL.
final class MemoryFleetDatabase: Sendable {
    struct BreakerRow {
        var state: String
        var openUntil: Int64?
        var probesFailed: Int
        var epoch: Int64
        var origin: String
        var publishedAt: Int64
    }

    struct ProbeRow {
        var epoch: Int64
        var holder: String
        var expires: Int64
    }

    struct BudgetKey: Hashable {
        var breaker: String
        var kind: String
        var member: String
    }

    struct BudgetRow {
        var demand: Double
        var share: Double
        var expires: Int64
    }

    struct Tables {
        var breakers: [String: BreakerRow] = [:]
        var probes: [String: ProbeRow] = [:]
        var budgets: [BudgetKey: BudgetRow] = [:]
        /// Every NOTIFY, in order, for each listening member (its own included, as PostgreSQL delivers them).
        var inboxes: [String: [String]] = [:]
    }

    let fleet = "eu"
    /// The database's clock: the true time, which every host's skewed clock follows.
    let clock: ManualClock
    let tables = Mutex(Tables())

    init(clock: ManualClock) { self.clock = clock }

    var now: Int64 { clock.now().milliseconds }

    func store(member: String) -> MemoryFleetStore {
        tables.withLock { $0.inboxes[member] = [] }
        return MemoryFleetStore(database: self, member: member)
    }

    /// What was sent on the channel since `member` last looked.
    func take(_ member: String) -> [String] {
        tables.withLock { tables in
            defer { tables.inboxes[member] = [] }
            return tables.inboxes[member] ?? []
        }
    }

    /// A NOTIFY from anyone: PostgreSQL checks no privilege on it.
    func notifyAsAnyone(_ payload: String) {
        tables.withLock { tables in
            for member in tables.inboxes.keys { tables.inboxes[member]!.append(payload) }
        }
    }
}

struct MemoryFleetStore: FleetStore {
    let database: MemoryFleetDatabase
    let member: String

    func databaseNow() async throws -> Int64 { database.now }

    func notify(_ payload: String) async throws { database.notifyAsAnyone(payload) }

    func publish(_ state: StateWrite) async throws -> StoredState? {
        let now = database.now
        return database.tables.withLock { tables in
            let epoch = (tables.breakers[state.breaker]?.epoch ?? 0) + 1
            let until = state.remaining.map { $0 + now }
            tables.breakers[state.breaker] = MemoryFleetDatabase.BreakerRow(
                state: state.state, openUntil: until, probesFailed: state.probesFailed, epoch: epoch, origin: member, publishedAt: now)
            return StoredState(epoch: epoch, openUntil: until, remaining: until.map { $0 - now }, publishedAt: now)
        }
    }

    func states() async throws -> [PublishedState] {
        let now = database.now
        return database.tables.withLock { tables in
            tables.breakers.map { breaker, row in
                let remaining = row.openUntil.map { until -> Int64 in
                    let (difference, overflow) = until.subtractingReportingOverflow(now)
                    return overflow ? (until > 0 ? 1_000_000_000_000_000 : -1_000_000_000_000_000)
                        : min(max(difference, -1_000_000_000_000_000), 1_000_000_000_000_000)
                }
                return PublishedState(fleet: database.fleet, breaker: breaker, state: row.state, openUntil: row.openUntil, remaining: remaining,
                                      probesFailed: row.probesFailed, epoch: row.epoch, origin: row.origin, publishedAt: row.publishedAt)
            }
        }
    }

    func claimProbe(breaker: String, epoch: Int64, term: Duration) async throws -> Bool {
        let now = database.now, term = term.millisecondsClamped
        return database.tables.withLock { tables in
            if let row = tables.probes[breaker],
               !ProbeLease.isFree(heldBy: row.holder, epoch: row.epoch, expires: row.expires, for: member, epoch: epoch, now: now, term: term) {
                return false
            }
            tables.probes[breaker] = MemoryFleetDatabase.ProbeRow(epoch: epoch, holder: member, expires: now + term)
            return true
        }
    }

    func renewProbe(breaker: String, epoch: Int64, term: Duration) async throws {
        let now = database.now
        database.tables.withLock { tables in
            guard let row = tables.probes[breaker], row.holder == member, row.epoch == epoch else { return }
            tables.probes[breaker]!.expires = now + term.millisecondsClamped
        }
    }

    func releaseProbe(breaker: String, epoch: Int64) async throws {
        database.tables.withLock { tables in
            guard let row = tables.probes[breaker], row.holder == member, row.epoch == epoch else { return }
            tables.probes[breaker] = nil
        }
    }

    func renewBudget(_ renewal: BudgetRenewal, share: @Sendable (OtherLeases) -> Double) async throws -> (share: Double, peers: Int) {
        let now = database.now, term = renewal.term.millisecondsClamped
        return database.tables.withLock { tables in
            let ofLimit = tables.budgets.filter { $0.key.breaker == renewal.breaker && $0.key.kind == renewal.kind }
            for (key, row) in ofLimit where row.expires < now || row.expires > now + term * 2 { tables.budgets[key] = nil }
            var others = OtherLeases()
            for (key, row) in tables.budgets where key.breaker == renewal.breaker && key.kind == renewal.kind && key.member != member {
                others.demand += row.demand >= 0 && row.demand <= 1e12 ? row.demand : 0
                others.share += row.share >= 0 && row.share <= renewal.capacity ? row.share : 0
                others.count += 1
            }
            let granted = share(others)
            let key = MemoryFleetDatabase.BudgetKey(breaker: renewal.breaker, kind: renewal.kind, member: member)
            tables.budgets[key] = MemoryFleetDatabase.BudgetRow(demand: renewal.demand, share: granted, expires: now + term)
            return (granted, others.count + 1)
        }
    }
}

/// A host's clock: the true time (the database's) moved by a fixed skew.
struct SkewedClock: BreakerClock {
    let truth: ManualClock
    let skew: Duration

    func now() -> Timestamp { truth.now() + skew }
}

/// Hands the engine's events to the fleet parts made after it (they need the engine).
final class LateSink: EngineEventSink {
    private let sinks = Mutex<[@Sendable (EngineEvent) -> Void]>([])

    func add(_ sink: @escaping @Sendable (EngineEvent) -> Void) { sinks.withLock { $0.append(sink) } }

    func receive(_ events: [EngineEvent]) {
        let all = sinks.withLock { $0 }
        for event in events { for sink in all { sink(event) } }
    }
}
