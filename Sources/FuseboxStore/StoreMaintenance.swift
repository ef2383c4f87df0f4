import FuseboxCore
import GRDB

/// Operator tasks on a store file: statistics, pruning, vacuum.
public enum StoreMaintenance {
    public struct Stats: Sendable {
        public var schemaVersion: Int
        public var fileBytes: Int64
        public var rows: [(table: String, count: Int)]
        public var firstMs: Int64?
        public var lastMs: Int64?
        public var instances: [String]
        public var runs: Int
    }

    public static func stats(_ path: String) throws -> Stats {
        let queue = try StoreDatabase.openForReading(path)
        return try queue.read { db in
            var rows: [(String, Int)] = []
            for table in ["transitions", "traffic", "failures", "routes", "runs"] {
                rows.append((table, try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0))
            }
            let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            let span = try Row.fetchOne(db, sql: """
                SELECT min(m), max(m) FROM (SELECT min(at_ms) AS m FROM transitions UNION ALL SELECT max(at_ms) FROM transitions
                    UNION ALL SELECT min(bucket_ms) FROM traffic UNION ALL SELECT max(bucket_ms) FROM traffic)
                """)
            return Stats(
                schemaVersion: try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0,
                fileBytes: pages * pageSize,
                rows: rows,
                firstMs: span?[0], lastMs: span?[1],
                instances: try String.fetchAll(db, sql: "SELECT DISTINCT instance FROM runs ORDER BY instance"),
                runs: try Int.fetchOne(db, sql: "SELECT count(*) FROM runs") ?? 0
            )
        }
    }

    /// Deletes rows older than `cutoffMs`; returns how many.
    @discardableResult
    public static func prune(_ queue: DatabaseQueue, before cutoffMs: Int64) throws -> Int {
        try queue.write { db in
            var deleted = 0
            for (table, column) in [("transitions", "at_ms"), ("traffic", "bucket_ms"), ("failures", "at_ms"), ("routes", "bucket_ms")] {
                try db.execute(sql: "DELETE FROM \(table) WHERE \(column) < ?", arguments: [cutoffMs])
                deleted += db.changesCount
            }
            // Whole minutes and hours only: the one holding the cutoff keeps its
            // row, and analyze reads a partial one from `traffic` anyway.
            for rollup in TrafficSQL.rollups {
                try db.execute(sql: "DELETE FROM \(rollup.table) WHERE \(rollup.key) + \(rollup.width) <= ?", arguments: [cutoffMs])
            }
            try db.execute(sql: "DELETE FROM runs WHERE coalesce(stopped_ms, started_ms) < ?", arguments: [cutoffMs])
            return deleted + db.changesCount
        }
    }

    /// Reclaims the space of deleted rows (a checkpoint, then VACUUM).
    public static func vacuum(_ path: String) throws -> (before: Int64, after: Int64) {
        let queue = try StoreDatabase.openForWriting(path)
        func size() throws -> Int64 {
            try queue.read { db in
                (try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0) * (try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0)
            }
        }
        let before = try size()
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            try db.execute(sql: "VACUUM")
        }
        return (before, try size())
    }
}
