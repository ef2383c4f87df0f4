import Logging
import PostgresNIO

/// `FleetStore` on one PostgreSQL connection of the fleet. Times stored for
/// other hosts are written and compared in PostgreSQL's own clock
/// (`databaseNow`), never in this host's.
struct PostgresFleetStore: FleetStore {
    static let channel = "fusebox_fleet"
    /// PostgreSQL's clock in Unix ms.
    static let databaseNow = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

    let connection: PostgresConnection
    let fleet: String
    let member: String
    let logger: Logger

    func databaseNow() async throws -> Int64 {
        let rows = try await connection.query("SELECT \(unescaped: Self.databaseNow)", logger: logger)
        for try await value in rows.decode(Int64.self) { return value }
        throw FleetSchema.Problem(description: "PostgreSQL returned no time")
    }

    func notify(_ payload: String) async throws {
        try await connection.query("SELECT pg_notify('\(unescaped: Self.channel)', \(payload))", logger: logger)
    }

    func publish(_ state: StateWrite) async throws -> StoredState? {
        let rows = try await connection.query("""
            INSERT INTO fleet_breakers (fleet, breaker, state, open_until_ms, probes_failed, epoch, origin, published_ms)
            VALUES (\(fleet), \(state.breaker), \(state.state), (\(state.remaining))::bigint + \(unescaped: Self.databaseNow),
                    \(state.probesFailed), 1, \(member), \(unescaped: Self.databaseNow))
            ON CONFLICT (fleet, breaker) DO UPDATE SET
                state = EXCLUDED.state, open_until_ms = EXCLUDED.open_until_ms, probes_failed = EXCLUDED.probes_failed,
                epoch = fleet_breakers.epoch + 1, origin = EXCLUDED.origin, published_ms = EXCLUDED.published_ms
            RETURNING epoch, open_until_ms, open_until_ms - published_ms, published_ms
            """, logger: logger)
        for try await (epoch, openUntil, remaining, published) in rows.decode((Int64, Int64?, Int64?, Int64).self) {
            return StoredState(epoch: epoch, openUntil: openUntil, remaining: remaining, publishedAt: published)
        }
        return nil
    }

    func states() async throws -> [PublishedState] {
        // In numeric and bounded: a row's end written by anyone with the table's privileges cannot overflow the subtraction.
        let rows = try await connection.query("""
            SELECT breaker, state, open_until_ms,
                   least(greatest(open_until_ms::numeric - \(unescaped: Self.databaseNow), -1e15), 1e15)::bigint,
                   probes_failed, epoch, origin, published_ms
            FROM fleet_breakers WHERE fleet = \(fleet)
            """, logger: logger)
        var states: [PublishedState] = []
        for try await (breaker, state, until, remaining, probes, epoch, origin, published)
            in rows.decode((String, String, Int64?, Int64?, Int, Int64, String, Int64).self) {
            states.append(PublishedState(fleet: fleet, breaker: breaker, state: state, openUntil: until, remaining: remaining,
                                         probesFailed: probes, epoch: epoch, origin: origin, publishedAt: published))
        }
        return states
    }

    func claimProbe(breaker: String, epoch: Int64, term: Duration) async throws -> Bool {
        let term = term.millisecondsClamped
        // `ProbeLease.isFree`, in SQL.
        let rows = try await connection.query("""
            INSERT INTO fleet_probes (fleet, breaker, epoch, holder, expires_ms)
            VALUES (\(fleet), \(breaker), \(epoch), \(member), \(unescaped: Self.databaseNow) + \(term))
            ON CONFLICT (fleet, breaker) DO UPDATE SET epoch = EXCLUDED.epoch, holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms
            WHERE fleet_probes.epoch < EXCLUDED.epoch OR fleet_probes.expires_ms < \(unescaped: Self.databaseNow)
               OR fleet_probes.holder = EXCLUDED.holder
               OR fleet_probes.expires_ms > \(unescaped: Self.databaseNow) + \(term * 2)
            RETURNING holder
            """, logger: logger)
        var won = false
        for try await holder in rows.decode(String.self) where holder == member { won = true }
        return won
    }

    func renewProbe(breaker: String, epoch: Int64, term: Duration) async throws {
        try await connection.query("""
            UPDATE fleet_probes SET expires_ms = \(unescaped: Self.databaseNow) + \(term.millisecondsClamped)
            WHERE fleet = \(fleet) AND breaker = \(breaker) AND holder = \(member) AND epoch = \(epoch)
            """, logger: logger)
    }

    func releaseProbe(breaker: String, epoch: Int64) async throws {
        try await connection.query("""
            DELETE FROM fleet_probes WHERE fleet = \(fleet) AND breaker = \(breaker) AND holder = \(member) AND epoch = \(epoch)
            """, logger: logger)
    }

    func renewBudget(_ renewal: BudgetRenewal, share: @Sendable (OtherLeases) -> Double) async throws -> (share: Double, peers: Int) {
        let (fleet, member, logger) = (fleet, member, logger)
        let (breaker, kind, capacity) = (renewal.breaker, renewal.kind, renewal.capacity)
        let lockName = "fusebox/\(fleet)/\(breaker)/\(kind)"
        let term = renewal.term.millisecondsClamped
        return try await connection.withTransaction(logger: logger) { connection -> (share: Double, peers: Int) in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(lockName)))", logger: logger)
            try await connection.query("""
                DELETE FROM fleet_leases WHERE fleet = \(fleet) AND breaker = \(breaker) AND kind = \(kind)
                    AND (expires_ms < \(unescaped: Self.databaseNow) OR expires_ms > \(unescaped: Self.databaseNow) + \(term * 2))
                """, logger: logger)
            // A share or demand no sidecar could write (negative, NaN, above the capacity) counts as none.
            let rows = try await connection.query("""
                SELECT coalesce(sum(CASE WHEN demand >= 0 AND demand <= 1e12 THEN demand ELSE 0 END), 0)::float8,
                       coalesce(sum(CASE WHEN share >= 0 AND share <= \(capacity) THEN share ELSE 0 END), 0)::float8,
                       count(*)::int FROM fleet_leases
                WHERE fleet = \(fleet) AND breaker = \(breaker) AND kind = \(kind) AND member <> \(member)
                """, logger: logger)
            var others = OtherLeases()
            for try await (d, s, c) in rows.decode((Double, Double, Int).self) { others = OtherLeases(demand: d, share: s, count: c) }
            let granted = share(others)
            try await connection.query("""
                INSERT INTO fleet_leases (fleet, breaker, kind, member, demand, share, capacity, expires_ms)
                VALUES (\(fleet), \(breaker), \(kind), \(member), \(renewal.demand), \(granted), \(capacity),
                        \(unescaped: Self.databaseNow) + \(term))
                ON CONFLICT (fleet, breaker, kind, member) DO UPDATE SET
                    demand = EXCLUDED.demand, share = EXCLUDED.share, capacity = EXCLUDED.capacity, expires_ms = EXCLUDED.expires_ms
                """, logger: logger)
            return (granted, others.count + 1)
        }
    }
}
