import Logging
import PostgresNIO

/// The fleet's tables in PostgreSQL, versioned in `fusebox_schema`. Created
/// when missing, brought forward from an older version by `migrations`; a
/// database of a newer version is refused, never altered.
enum FleetSchema {
    static let version = 2

    /// Columns each version added to a table, so a reader of an older
    /// database (`analyze`) reads them as NULL.
    static let addedColumns: [(version: Int, table: String, columns: [String])] = [
        (2, "history_transitions", ["probe_outcome", "probe_latency_ms", "probe_status", "origin"]),
    ]

    /// Version N's statements, for N from 2, run in order on an older database (and after `tables` on a new one).
    static let migrations: [Int: [String]] = [
        // 2: the transition's active probe and fleet origin, as in the local store (versions 5 and 6).
        2: [
            """
            ALTER TABLE history_transitions ADD COLUMN probe_outcome TEXT, ADD COLUMN probe_latency_ms BIGINT,
                ADD COLUMN probe_status BIGINT, ADD COLUMN origin TEXT
            """,
        ],
    ]

    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    /// Creates the tables, or checks that the ones there are ours and this version.
    static func prepare(_ connection: PostgresConnection, logger: Logger) async throws {
        // One sidecar at a time creates them: the lock serialises first starts across the fleet.
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            let exists = try await connection.query(
                "SELECT count(*)::int FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'fusebox_schema'",
                logger: logger
            ).collect().first?.decode(Int.self) ?? 0
            let found: Int
            if exists == 0 {
                // Version 1's tables, then each migration: one way to every version, whichever the start.
                for statement in tables { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.query("INSERT INTO fusebox_schema (version) VALUES (1)", logger: logger)
                found = 1
            } else {
                let stored = try await connection.query("SELECT max(version) FROM fusebox_schema", logger: logger)
                    .collect().first?.decode(Int?.self) ?? nil
                guard let stored, (1...version).contains(stored) else {
                    throw Problem(description: "the PostgreSQL database has Fusebox schema version \(stored.map(String.init) ?? "none"); this build uses version \(version) and migrates from 1 (use a database of a version up to \(version), or an empty one)")
                }
                found = stored
            }
            guard found < version else { return }
            for next in (found + 1)...version {
                for statement in migrations[next] ?? [] { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            }
            try await connection.query("INSERT INTO fusebox_schema (version) VALUES (\(version))", logger: logger)  // one row per version reached
        }
    }

    /// Every statement that makes an empty database this version, in the order `prepare` runs them.
    static var creation: [String] {
        var statements = tables + ["INSERT INTO fusebox_schema (version) VALUES (1)"]
        for next in stride(from: 2, through: version, by: 1) { statements += migrations[next] ?? [] }
        if version > 1 { statements.append("INSERT INTO fusebox_schema (version) VALUES (\(version))") }
        return statements
    }

    /// `hashtext('fusebox_schema')`, fixed so every build takes the same lock.
    static let lockKey: Int64 = 0x4642_5831_0001

    static let tables = [
        "CREATE TABLE fusebox_schema (version INTEGER NOT NULL)",
        // Openings: the current shared state of each breaker, one row per fleet and breaker.
        """
        CREATE TABLE fleet_breakers (
            fleet TEXT NOT NULL, breaker TEXT NOT NULL, state TEXT NOT NULL, open_until_ms BIGINT,
            probes_failed INTEGER NOT NULL DEFAULT 0, epoch BIGINT NOT NULL, origin TEXT NOT NULL, published_ms BIGINT NOT NULL,
            PRIMARY KEY (fleet, breaker))
        """,
        // The fleet's single probe per open period: who holds it, for which epoch, until when.
        """
        CREATE TABLE fleet_probes (
            fleet TEXT NOT NULL, breaker TEXT NOT NULL, epoch BIGINT NOT NULL, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL,
            PRIMARY KEY (fleet, breaker))
        """,
        // Budget leases: each member's demand and granted share of a fleet-scoped limit.
        """
        CREATE TABLE fleet_leases (
            fleet TEXT NOT NULL, breaker TEXT NOT NULL, kind TEXT NOT NULL, member TEXT NOT NULL,
            demand DOUBLE PRECISION NOT NULL, share DOUBLE PRECISION NOT NULL, capacity DOUBLE PRECISION NOT NULL,
            expires_ms BIGINT NOT NULL, PRIMARY KEY (fleet, breaker, kind, member))
        """,
        // History: the local stores' rows, keyed on the store's identity and the row's local id.
        """
        CREATE TABLE history_runs (
            store_id TEXT NOT NULL, local_id BIGINT NOT NULL, fleet TEXT NOT NULL, instance TEXT NOT NULL,
            started_ms BIGINT NOT NULL, stopped_ms BIGINT, version TEXT NOT NULL, pid BIGINT NOT NULL, config TEXT NOT NULL,
            PRIMARY KEY (store_id, local_id))
        """,
        """
        CREATE TABLE history_transitions (
            store_id TEXT NOT NULL, local_id BIGINT NOT NULL, fleet TEXT NOT NULL, at_ms BIGINT NOT NULL, timestamp TEXT NOT NULL,
            instance TEXT NOT NULL, breaker TEXT NOT NULL, old_state TEXT NOT NULL, new_state TEXT NOT NULL, reason TEXT NOT NULL,
            generation BIGINT NOT NULL, failure_count BIGINT NOT NULL, calls_in_window BIGINT NOT NULL,
            failures_in_window BIGINT NOT NULL, failure_rate DOUBLE PRECISION NOT NULL, slow_call_rate DOUBLE PRECISION NOT NULL,
            last_error TEXT, last_status BIGINT, open_until_ms BIGINT, open_until TEXT,
            PRIMARY KEY (store_id, local_id))
        """,
        "CREATE INDEX history_transitions_at ON history_transitions (at_ms)",
        """
        CREATE TABLE history_failures (
            store_id TEXT NOT NULL, local_id BIGINT NOT NULL, fleet TEXT NOT NULL, at_ms BIGINT NOT NULL, instance TEXT NOT NULL,
            breaker TEXT NOT NULL, outcome TEXT NOT NULL, status BIGINT, error TEXT,
            PRIMARY KEY (store_id, local_id))
        """,
        "CREATE INDEX history_failures_at ON history_failures (at_ms)",
        """
        CREATE TABLE history_traffic (
            store_id TEXT NOT NULL, fleet TEXT NOT NULL, instance TEXT NOT NULL, breaker TEXT NOT NULL, bucket_ms BIGINT NOT NULL,
            \(HistoryTables.trafficCounts.map { "\($0) \($0 == "latency_sum_ms" ? "DOUBLE PRECISION" : "BIGINT") NOT NULL" }.joined(separator: ", ")),
            PRIMARY KEY (store_id, instance, breaker, bucket_ms))
        """,
        "CREATE INDEX history_traffic_bucket ON history_traffic (bucket_ms)",
        """
        CREATE TABLE history_routes (
            store_id TEXT NOT NULL, fleet TEXT NOT NULL, instance TEXT NOT NULL, chain TEXT NOT NULL, bucket_ms BIGINT NOT NULL,
            from_breaker TEXT NOT NULL, to_breaker TEXT NOT NULL, count BIGINT NOT NULL,
            PRIMARY KEY (store_id, instance, chain, bucket_ms, from_breaker, to_breaker))
        """,
        "CREATE INDEX history_routes_bucket ON history_routes (bucket_ms)",
        // The shipper's persisted watermark per store and table, moved in the same transaction as the rows.
        """
        CREATE TABLE history_watermarks (
            store_id TEXT NOT NULL, table_name TEXT NOT NULL, mark BIGINT NOT NULL, PRIMARY KEY (store_id, table_name))
        """,
    ]
}
