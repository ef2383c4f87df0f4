import FuseboxStore

/// What the shipper copies from a local store to PostgreSQL, table by table,
/// and how it knows where it left off.
struct HistoryTable: Sendable {
    enum Progress: Sendable {
        /// Append-only rows: everything after the highest local id shipped.
        case id
        /// `runs`: final once a newer run starts, so the latest is shipped again each pass (its stop time comes later).
        case latestRun
        /// Buckets counted up in place: the last `margin` ms of buckets are shipped again (replacing the counts).
        case bucket(keys: [String], margin: Int64)
    }

    var local: String
    var remote: String
    /// Local columns copied, in order (without `id`).
    var columns: [String]
    var progress: Progress
    /// Columns a re-shipped row overwrites.
    var updates: [String]

    var conflictKey: [String] {
        switch progress {
        case .id, .latestRun: return ["store_id", "local_id"]
        case .bucket(let keys, _): return ["store_id"] + keys
        }
    }
}

enum HistoryTables {
    static let trafficCounts = StoreSchema.trafficCounts

    /// Buckets this recent may still be counted into by the local writer.
    static let bucketMargin: Int64 = 120_000

    static let all: [HistoryTable] = [
        HistoryTable(local: "runs", remote: "history_runs",
                     columns: ["instance", "started_ms", "stopped_ms", "version", "pid", "config"],
                     progress: .latestRun, updates: ["stopped_ms"]),
        HistoryTable(local: "transitions", remote: "history_transitions",
                     columns: ["at_ms", "timestamp", "instance", "breaker", "old_state", "new_state", "reason", "generation",
                               "failure_count", "calls_in_window", "failures_in_window", "failure_rate", "slow_call_rate",
                               "last_error", "last_status", "open_until_ms", "open_until",
                               "probe_outcome", "probe_latency_ms", "probe_status", "origin"],
                     progress: .id, updates: []),
        HistoryTable(local: "failures", remote: "history_failures",
                     columns: ["at_ms", "instance", "breaker", "outcome", "status", "error"], progress: .id, updates: []),
        HistoryTable(local: "traffic", remote: "history_traffic",
                     columns: ["instance", "breaker", "bucket_ms"] + trafficCounts,
                     progress: .bucket(keys: ["bucket_ms", "instance", "breaker"], margin: bucketMargin), updates: trafficCounts),
        HistoryTable(local: "routes", remote: "history_routes",
                     columns: ["instance", "chain", "bucket_ms", "from_breaker", "to_breaker", "count"],
                     progress: .bucket(keys: ["bucket_ms", "instance", "chain", "from_breaker", "to_breaker"], margin: bucketMargin),
                     updates: ["count"]),
    ]
}
