import FuseboxStore
import GRDB
import Logging
import PostgresNIO

/// Copies a local store's rows to PostgreSQL in batches. Each batch and its
/// watermark commit in one transaction, and rows are keyed on (store id,
/// local id), so an outage, a crash or a restart mid-way re-sends at most
/// one batch, which the keys make harmless: nothing lost, nothing doubled.
final class HistoryShipper: Sendable {
    let storePath: String
    let fleet: String
    private let logger: Logger
    static let batchRows = 500

    struct Pass: Sendable {
        var rows = 0
        /// Whether every table was read to its end.
        var caughtUp = true
    }

    init(storePath: String, fleet: String, logger: Logger) {
        self.storePath = storePath
        self.fleet = fleet
        self.logger = logger
    }

    /// One pass over every table: ships what is new since the watermarks.
    func ship(over connection: PostgresConnection, maxBatches: Int = 200) async throws -> Pass {
        let queue = try StoreDatabase.openForReading(storePath)
        defer { try? queue.close() }
        guard let storeID = try await queue.read({ try StoreSchema.identity($0) }) else {
            throw FleetSchema.Problem(description: "the store \(storePath) has no identity (an older schema); start the sidecar once to migrate it")
        }
        let marks = try await watermarks(storeID, connection)
        var pass = Pass()
        var batches = 0
        for table in HistoryTables.all {
            var mark = marks[table.local]
            var after: [DatabaseValue]?
            while batches < maxBatches {
                let rows = try await queue.read { db in try Self.read(table, db, mark: mark, after: after) }
                if rows.isEmpty { break }
                let newMark = Self.mark(table, rows: rows, old: mark)
                try await write(table, rows: rows, storeID: storeID, mark: newMark, connection)
                pass.rows += rows.count
                batches += 1
                mark = newMark
                if rows.count < Self.batchRows { break }
                after = Self.keyset(table, rows.last!)
            }
            if batches >= maxBatches { pass.caughtUp = false }
        }
        return pass
    }

    /// `fleet.retention`: this fleet's history older than `cutoff` (Unix ms) goes. Any sidecar may run it; deletes are idempotent.
    func prune(over connection: PostgresConnection, before cutoff: Int64) async throws {
        let fleet = self.fleet
        try await connection.query("DELETE FROM history_transitions WHERE fleet = \(fleet) AND at_ms < \(cutoff)", logger: logger)
        try await connection.query("DELETE FROM history_failures WHERE fleet = \(fleet) AND at_ms < \(cutoff)", logger: logger)
        try await connection.query("DELETE FROM history_traffic WHERE fleet = \(fleet) AND bucket_ms < \(cutoff)", logger: logger)
        try await connection.query("DELETE FROM history_routes WHERE fleet = \(fleet) AND bucket_ms < \(cutoff)", logger: logger)
        try await connection.query(
            "DELETE FROM history_runs WHERE fleet = \(fleet) AND coalesce(stopped_ms, started_ms) < \(cutoff)", logger: logger
        )
    }

    private func watermarks(_ storeID: String, _ connection: PostgresConnection) async throws -> [String: Int64] {
        var marks: [String: Int64] = [:]
        let rows = try await connection.query("SELECT table_name, mark FROM history_watermarks WHERE store_id = \(storeID)", logger: logger)
        for try await (name, mark) in rows.decode((String, Int64).self) { marks[name] = mark }
        return marks
    }

    /// The next batch after the watermark; `after` continues a keyset walk within one pass.
    static func read(_ table: HistoryTable, _ db: Database, mark: Int64?, after: [DatabaseValue]?) throws -> [Row] {
        let list = table.columns.joined(separator: ", ")
        switch table.progress {
        case .id:
            let from = after.flatMap { Int64.fromDatabaseValue($0[0]) } ?? mark ?? 0
            return try Row.fetchAll(db, sql: "SELECT id, \(list) FROM \(table.local) WHERE id > ? ORDER BY id LIMIT \(batchRows)", arguments: [from])
        case .latestRun:
            if let after, let last = Int64.fromDatabaseValue(after[0]) {
                return try Row.fetchAll(db, sql: "SELECT id, \(list) FROM runs WHERE id > ? ORDER BY id LIMIT \(batchRows)", arguments: [last])
            }
            return try Row.fetchAll(db, sql: "SELECT id, \(list) FROM runs WHERE id >= ? ORDER BY id LIMIT \(batchRows)", arguments: [mark ?? 0])
        case .bucket(let keys, let margin):
            let order = keys.joined(separator: ", ")
            if let after {
                let marks = keys.map { _ in "?" }.joined(separator: ", ")
                return try Row.fetchAll(db, sql: """
                    SELECT \(list) FROM \(table.local) WHERE (\(order)) > (\(marks)) ORDER BY \(order) LIMIT \(batchRows)
                    """, arguments: StatementArguments(after))
            }
            let from = mark.map { $0 - margin } ?? .min
            return try Row.fetchAll(db, sql: """
                SELECT \(list) FROM \(table.local) WHERE bucket_ms >= ? ORDER BY \(order) LIMIT \(batchRows)
                """, arguments: [from])
        }
    }

    /// Where the keyset walk goes on from: the last row's key values.
    static func keyset(_ table: HistoryTable, _ row: Row) -> [DatabaseValue] {
        switch table.progress {
        case .id, .latestRun: return [row["id"]]
        case .bucket(let keys, _): return keys.map { row[$0] }
        }
    }

    static func mark(_ table: HistoryTable, rows: [Row], old: Int64?) -> Int64 {
        let column: String
        switch table.progress {
        case .id, .latestRun: column = "id"
        case .bucket: column = "bucket_ms"
        }
        let newest = rows.compactMap { Int64.fromDatabaseValue($0[column]) }.max() ?? 0
        return max(old ?? 0, newest)
    }

    private func write(_ table: HistoryTable, rows: [Row], storeID: String, mark: Int64, _ connection: PostgresConnection) async throws {
        var bindings = PostgresBindings(capacity: rows.count * (table.columns.count + 3))
        var tuples: [String] = []
        var parameter = 0
        func next() -> String {
            parameter += 1
            return "$\(parameter)"
        }
        let keyed: Bool
        switch table.progress {
        case .id, .latestRun: keyed = true
        case .bucket: keyed = false
        }
        for row in rows {
            var places = [next(), next()]
            bindings.append(storeID)
            bindings.append(fleet)
            if keyed {
                places.append(next())
                bindings.append(Int64.fromDatabaseValue(row["id"]) ?? 0)
            }
            for column in table.columns {
                places.append(next())
                Self.bind(row[column] as DatabaseValue, into: &bindings)
            }
            tuples.append("(" + places.joined(separator: ", ") + ")")
        }
        let columns = ["store_id", "fleet"] + (keyed ? ["local_id"] : []) + table.columns
        let onConflict = table.updates.isEmpty
            ? "DO NOTHING"
            : "DO UPDATE SET " + table.updates.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
        let insert = "INSERT INTO \(table.remote) (\(columns.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", ")) "
            + "ON CONFLICT (\(table.conflictKey.joined(separator: ", "))) \(onConflict)"
        let name = table.local
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: insert, binds: bindings), logger: logger)
            try await connection.query("""
                INSERT INTO history_watermarks (store_id, table_name, mark) VALUES (\(storeID), \(name), \(mark))
                ON CONFLICT (store_id, table_name) DO UPDATE SET mark = EXCLUDED.mark
                """, logger: logger)
        }
    }

    static func bind(_ value: DatabaseValue, into bindings: inout PostgresBindings) {
        switch value.storage {
        case .null: bindings.appendNull()
        case .int64(let number): bindings.append(number)
        case .double(let number): bindings.append(number)
        case .string(let text): bindings.append(text)
        case .blob(let data): bindings.append(String(decoding: data, as: UTF8.self))
        }
    }
}
