import FuseboxConfig
import FuseboxCore
import FuseboxStore
import GRDB

/// One store file, read-only, and the queries the analyzer asks of it.
final class StoreSource: @unchecked Sendable {
    let path: String
    let queue: DatabaseQueue
    /// The select list summing `traffic` rows; a version 1 store has no budget columns.
    let trafficSums: String
    /// Version 3 on: per-minute and per-hour totals beside `traffic`.
    let hasRollups: Bool
    /// Version 5 on: transitions carry the sidecar's own probe.
    let hasProbeColumns: Bool

    init(path: String, queue: DatabaseQueue) {
        self.path = path
        self.queue = queue
        let version = ((try? queue.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") }) ?? nil)
            ?? StoreSchema.currentVersion
        trafficSums = TrafficTotals.sums(budgetColumns: version >= 2)
        hasRollups = version >= 3
        hasProbeColumns = version >= 5
    }

    /// Another read-only connection to the same file, for a second thread.
    func clone() throws -> StoreSource { StoreSource(path: path, queue: try StoreDatabase.openForReading(path)) }

    func lane(_ instance: String, _ breaker: String, multiHost: Bool) -> Lane {
        Lane(instance: instance, breaker: breaker, label: multiHost ? "\(instance)/\(breaker)" : breaker)
    }

    /// First and last record times.
    func extent() throws -> (Int64, Int64)? {
        try queue.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT min(m), max(m) FROM (
                    SELECT min(at_ms) AS m FROM transitions UNION ALL SELECT max(at_ms) FROM transitions
                    UNION ALL SELECT min(bucket_ms) FROM traffic UNION ALL SELECT max(bucket_ms) + 10000 FROM traffic)
                """)
            guard let first: Int64 = row?[0], let last: Int64 = row?[1] else { return nil }
            return (first, last)
        }
    }

    /// Every instance that ran on this store (each run records itself), and
    /// any with traffic, found by seeking along the traffic key rather than
    /// scanning millions of rows.
    func instances() throws -> [String] {
        try queue.read { db in
            var found = Set(try String.fetchAll(db, sql: "SELECT DISTINCT instance FROM runs"))
            var next = try String.fetchOne(db, sql: "SELECT min(instance) FROM traffic")
            while let instance = next {
                found.insert(instance)
                next = try String.fetchOne(db, sql: "SELECT min(instance) FROM traffic WHERE instance > ?", arguments: [instance])
            }
            return found.sorted()
        }
    }

    /// Lanes with traffic in the range: a skip-scan along the traffic key
    /// (instance, breaker, bucket), one seek per lane.
    func trafficLanes(from: Int64, to: Int64, breakers: Set<String>, multiHost: Bool) throws -> [Lane] {
        try queue.read { db in
            var lanes: [Lane] = []
            var next = try Row.fetchOne(db, sql: "SELECT instance, breaker FROM traffic ORDER BY instance, breaker LIMIT 1")
            while let row = next {
                let instance: String = row[0], breaker: String = row[1]
                let inRange = try Bool.fetchOne(db, sql: """
                    SELECT EXISTS (SELECT 1 FROM traffic WHERE instance = ? AND breaker = ? AND bucket_ms >= ? AND bucket_ms <= ?)
                    """, arguments: [instance, breaker, from, to]) ?? false
                if inRange, breakers.isEmpty || breakers.contains(breaker) {
                    lanes.append(lane(instance, breaker, multiHost: multiHost))
                }
                next = try Row.fetchOne(db, sql: """
                    SELECT instance, breaker FROM traffic WHERE (instance, breaker) > (?, ?) ORDER BY instance, breaker LIMIT 1
                    """, arguments: [instance, breaker])
            }
            return lanes
        }
    }

    /// Breakers of `chain`: from the latest run's configuration, else from recorded routes.
    func chainMembers(_ chain: String) throws -> Set<String> {
        try queue.read { db in
            if let text = try String.fetchOne(db, sql: "SELECT config FROM runs ORDER BY started_ms DESC LIMIT 1"),
               let config = try? ConfigLoader.load(yaml: text, file: path),
               let found = config.engine.chains.first(where: { $0.name == chain }) {
                return Set(found.breakers)
            }
            let rows = try Row.fetchAll(db, sql: "SELECT DISTINCT from_breaker, to_breaker FROM routes WHERE chain = ?", arguments: [chain])
            return Set(rows.flatMap { [$0[0] as String, $0[1] as String] }.filter { !$0.isEmpty })
        }
    }

    func traffic(instance: String, breakers: [String], from: Int64, to: Int64) throws -> TrafficTotals {
        guard !breakers.isEmpty else { return TrafficTotals() }
        if hasRollups, to < .max { return try rolledUpTraffic(instance: instance, breakers: breakers, from: from, to: to) }
        return try queue.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT \(trafficSums)
                FROM traffic WHERE instance = ? AND bucket_ms >= ? AND bucket_ms <= ?
                    AND breaker IN (\(breakers.map { _ in "?" }.joined(separator: ",")))
                """, arguments: StatementArguments([instance, from, to] as [DatabaseValueConvertible]) + StatementArguments(breakers))
            return row.map { TrafficTotals(sums: $0) } ?? TrafficTotals()
        }
    }

    /// The earliest failure of these breakers in the window, and whose: a
    /// sampled failure's time, else the start of the first bucket with failures.
    func firstFailure(instance: String, breakers: [String], from: Int64, to: Int64) throws -> (at: Int64, breaker: String)? {
        guard !breakers.isEmpty else { return nil }
        let list = breakers.map { _ in "?" }.joined(separator: ",")
        return try queue.read { db in
            if let row = try Row.fetchOne(db, sql: """
                SELECT at_ms, breaker FROM failures WHERE instance = ? AND at_ms >= ? AND at_ms <= ? AND breaker IN (\(list))
                ORDER BY at_ms, id LIMIT 1
                """, arguments: StatementArguments([instance, from, to] as [DatabaseValueConvertible]) + StatementArguments(breakers)) {
                return (row[0], row[1])
            }
            guard let row = try Row.fetchOne(db, sql: """
                SELECT bucket_ms, breaker FROM traffic WHERE instance = ? AND bucket_ms >= ? AND bucket_ms <= ?
                    AND breaker IN (\(list)) AND failures + timeouts > 0 ORDER BY bucket_ms LIMIT 1
                """, arguments: StatementArguments([instance, from - 10_000, to] as [DatabaseValueConvertible]) + StatementArguments(breakers))
            else { return nil }
            return (max(row[0] as Int64, from), row[1])
        }
    }

    /// Sampled failures by status (or outcome when no status came).
    func errorMix(instance: String, breakers: [String], from: Int64, to: Int64) throws -> [String: Int] {
        guard !breakers.isEmpty else { return [:] }
        return try queue.read { db in
            var mix: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT coalesce(CAST(status AS TEXT), outcome), count(*) FROM failures
                WHERE instance = ? AND at_ms >= ? AND at_ms <= ? AND breaker IN (\(breakers.map { _ in "?" }.joined(separator: ",")))
                GROUP BY 1
                """, arguments: StatementArguments([instance, from, to] as [DatabaseValueConvertible]) + StatementArguments(breakers)) {
                mix[row[0], default: 0] += row[1] as Int
            }
            return mix
        }
    }

    func routes(instance: String, from: Int64, to: Int64) throws -> [(chain: String, from: String, to: String, count: Int)] {
        try queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT chain, from_breaker, to_breaker, sum(count) FROM routes
                WHERE instance = ? AND bucket_ms >= ? AND bucket_ms <= ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
                """, arguments: [instance, from, to]).map { ($0[0], $0[1], $0[2], $0[3]) }
        }
    }
}

extension TrafficTotals {
    /// The select list that sums a range of `traffic` rows, in the order `init(sums:)` reads.
    static let columns = [
        "successes", "failures", "timeouts", "ignored", "rejected", "fallbacks_in", "fallbacks_out", "slow", "expired",
        "abandoned", "rejected_concurrency", "rejected_rate", "rejected_tokens",
    ]

    static func sums(budgetColumns: Bool) -> String {
        columns.map { name in budgetColumns || !name.hasPrefix("rejected_") ? "sum(\(name))" : "0" }.joined(separator: ", ")
    }

    /// Reads the columns in `columns` order, starting at `offset`.
    init(sums row: Row, offset: Int = 0) {
        func v(_ i: Int) -> Int { (row[offset + i] as Int?) ?? 0 }
        self.init(successes: v(0), failures: v(1), timeouts: v(2), ignored: v(3), rejected: v(4),
                  fallbacksIn: v(5), fallbacksOut: v(6), slow: v(7), expired: v(8), abandoned: v(9),
                  rejectedConcurrency: v(10), rejectedRate: v(11), rejectedTokens: v(12))
    }
}
