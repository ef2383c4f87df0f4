import GRDB

/// The store's tables, versioned with `PRAGMA user_version`; each migration
/// moves the file forward one version, in its own transaction.
public enum StoreSchema {
    /// `PRAGMA application_id`: "FBX1". Tells a Fusebox store from any other SQLite file.
    public static let applicationID: Int32 = 0x4642_5831
    public static var currentVersion: Int { migrations.count }

    /// The count columns of `traffic` and its roll-ups.
    public static let trafficCounts = [
        "successes", "failures", "timeouts", "ignored", "cancelled", "rejected", "fallbacks_in", "fallbacks_out", "slow",
        "expired", "abandoned", "latency_sum_ms", "latency_count", "rejected_concurrency", "rejected_rate", "rejected_tokens",
    ]

    static func rollupTable(_ name: String, key: String) -> String {
        let counts = trafficCounts.map { "\($0) \($0 == "latency_sum_ms" ? "REAL" : "INTEGER") NOT NULL DEFAULT 0" }
        return "CREATE TABLE \(name) (instance TEXT NOT NULL, breaker TEXT NOT NULL, \(key) INTEGER NOT NULL, "
            + counts.joined(separator: ", ") + ", PRIMARY KEY (instance, breaker, \(key))) WITHOUT ROWID"
    }

    /// Fills a roll-up table from `traffic` (version 3's migration; the
    /// analyze benchmark's store builder writes `traffic` directly).
    public static func rollup(into table: String, width: Int64) -> String {
        "INSERT INTO \(table) SELECT instance, breaker, bucket_ms - ((bucket_ms % \(width)) + \(width)) % \(width), "
            + trafficCounts.map { "sum(\($0))" }.joined(separator: ", ") + " FROM traffic GROUP BY 1, 2, 3"
    }

    /// The SQL of version N is `migrations[N - 1]`.
    static let migrations: [String] = [
        """
        CREATE TABLE transitions (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,             -- when, Unix milliseconds
            timestamp TEXT NOT NULL,            -- the same, RFC 3339 UTC
            instance TEXT NOT NULL,
            breaker TEXT NOT NULL,
            old_state TEXT NOT NULL,
            new_state TEXT NOT NULL,
            reason TEXT NOT NULL,
            generation INTEGER NOT NULL,
            failure_count INTEGER NOT NULL,     -- failures in a row at that moment
            calls_in_window INTEGER NOT NULL,
            failures_in_window INTEGER NOT NULL,
            failure_rate REAL NOT NULL,
            slow_call_rate REAL NOT NULL,
            last_error TEXT,
            last_status INTEGER,
            open_until_ms INTEGER,              -- set when new_state is open
            open_until TEXT
        );
        CREATE INDEX transitions_at ON transitions (at_ms);
        CREATE INDEX transitions_breaker_at ON transitions (breaker, at_ms);

        CREATE TABLE traffic (
            instance TEXT NOT NULL,
            breaker TEXT NOT NULL,
            bucket_ms INTEGER NOT NULL,         -- start of a 10-second bucket, Unix milliseconds
            successes INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            timeouts INTEGER NOT NULL DEFAULT 0,
            ignored INTEGER NOT NULL DEFAULT 0,
            cancelled INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            fallbacks_in INTEGER NOT NULL DEFAULT 0,
            fallbacks_out INTEGER NOT NULL DEFAULT 0,
            slow INTEGER NOT NULL DEFAULT 0,
            expired INTEGER NOT NULL DEFAULT 0,
            abandoned INTEGER NOT NULL DEFAULT 0,
            latency_sum_ms REAL NOT NULL DEFAULT 0,
            latency_count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (instance, breaker, bucket_ms)
        ) WITHOUT ROWID;
        CREATE INDEX traffic_bucket ON traffic (bucket_ms);

        CREATE TABLE failures (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            instance TEXT NOT NULL,
            breaker TEXT NOT NULL,
            outcome TEXT NOT NULL,              -- failure or timeout
            status INTEGER,
            error TEXT
        );
        CREATE INDEX failures_breaker_at ON failures (breaker, at_ms);
        CREATE INDEX failures_at ON failures (at_ms);

        CREATE TABLE routes (
            instance TEXT NOT NULL,
            chain TEXT NOT NULL,
            bucket_ms INTEGER NOT NULL,
            from_breaker TEXT NOT NULL,         -- the chain's first breaker
            to_breaker TEXT NOT NULL,           -- who served; '' when no breaker could
            count INTEGER NOT NULL,
            PRIMARY KEY (instance, chain, bucket_ms, from_breaker, to_breaker)
        ) WITHOUT ROWID;
        CREATE INDEX routes_bucket ON routes (bucket_ms);

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            instance TEXT NOT NULL,
            started_ms INTEGER NOT NULL,
            stopped_ms INTEGER,                 -- NULL while running, or after a crash
            version TEXT NOT NULL,
            pid INTEGER NOT NULL,
            config TEXT NOT NULL                -- the effective configuration, as fusebox check prints it
        );
        """,
        // 2: budget refusals by reason; `rejected` keeps counting every refusal.
        """
        ALTER TABLE traffic ADD COLUMN rejected_concurrency INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE traffic ADD COLUMN rejected_rate INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE traffic ADD COLUMN rejected_tokens INTEGER NOT NULL DEFAULT 0;
        """,
        // 3: what `analyze` reads for long periods. `traffic_minutely` and
        // `traffic_hourly` hold the same counts as `traffic` summed per minute
        // and per hour (written in the same transaction), so a month is 720
        // rows a lane instead of 259,200; the covering index serves the
        // lane-history scan from the index alone.
        """
        \(rollupTable("traffic_minutely", key: "minute_ms"));
        \(rollupTable("traffic_hourly", key: "hour_ms"));
        \(rollup(into: "traffic_minutely", width: 60_000));
        \(rollup(into: "traffic_hourly", width: 3_600_000));
        CREATE INDEX transitions_lane ON transitions (breaker, at_ms, id, instance, old_state, new_state);
        DROP INDEX transitions_breaker_at;
        """,
        // 4: the store's own identity, random and fixed for the file's life:
        // fleet mode ships rows keyed on it, so a store recreated under the
        // same instance name never collides with the rows of the one before.
        """
        CREATE TABLE store_identity (id TEXT NOT NULL);
        INSERT INTO store_identity VALUES (lower(hex(randomblob(16))));
        """,
        // 5: the sidecar's own probe behind a transition (active probes).
        """
        ALTER TABLE transitions ADD COLUMN probe_outcome TEXT;
        ALTER TABLE transitions ADD COLUMN probe_latency_ms INTEGER;
        ALTER TABLE transitions ADD COLUMN probe_status INTEGER;
        """,
        // 6: the fleet member behind a transition applied from a peer (reason `fleet`).
        """
        ALTER TABLE transitions ADD COLUMN origin TEXT;
        """,
        // 7: each breaker's budget pause after a 429 (Retry-After), so a restart does not lift it.
        """
        CREATE TABLE budget_pauses (
            instance TEXT NOT NULL,
            breaker TEXT NOT NULL,
            until_ms INTEGER NOT NULL,          -- Unix milliseconds; 0 once a reset lifted it
            PRIMARY KEY (instance, breaker)
        ) WITHOUT ROWID;
        """,
    ]

    /// The store's identity (version 4 on).
    public static func identity(_ db: Database) throws -> String? {
        guard try db.tableExists("store_identity") else { return nil }
        return try String.fetchOne(db, sql: "SELECT id FROM store_identity LIMIT 1")
    }

    /// Brings `db` to the current version. A file from a newer Fusebox, or one
    /// that is not a Fusebox store, is refused.
    static func migrate(_ db: Database, path: String) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        let application = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
        if application != applicationID {
            guard application == 0, version == 0, tables == 0 else {
                throw StoreError.notAStore(path)
            }
        }
        guard version <= currentVersion else { throw StoreError.tooNew(path, version: version) }
        for next in (version + 1)...max(version + 1, currentVersion) where next <= currentVersion {
            try db.inTransaction {
                try db.execute(sql: migrations[next - 1])
                try db.execute(sql: "PRAGMA user_version = \(next)")
                try db.execute(sql: "PRAGMA application_id = \(applicationID)")
                return .commit
            }
        }
    }
}

public enum StoreError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(String, reason: String)
    case notAStore(String)
    case tooNew(String, version: Int)
    case notFound(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open the store \(path): \(reason)"
        case .notAStore(let path): return "\(path) is not a Fusebox store (an SQLite file with other contents, or not SQLite at all)"
        case .tooNew(let path, let version):
            return "\(path) has store schema version \(version); this fusebox reads up to \(StoreSchema.currentVersion): upgrade fusebox"
        case .notFound(let path): return "\(path) does not exist"
        }
    }
}
