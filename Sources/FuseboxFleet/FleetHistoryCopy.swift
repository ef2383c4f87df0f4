import FuseboxConfig
import FuseboxStore
import GRDB
import Logging
import PostgresNIO

/// `analyze --db postgresql://…`: the fleet's history, copied out of
/// PostgreSQL into a store file of the local schema, so the one analyzer
/// (its incident logic and its SQLite reader) serves both. Rows of every
/// store are merged: buckets of one instance from two stores (a store
/// recreated on the same host) are added up, as one store would have.
public enum FleetHistoryCopy {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Copies the rows in [since − 1 day, until] (all when nil) into a new store at `path`.
    /// A row holding a number no sidecar writes (NaN or an infinity: PostgreSQL
    /// takes them, SQLite would store NULL and the whole copy would then be
    /// refused as damaged) is skipped; the skipped rows are returned per table.
    @discardableResult
    public static func copy(
        from url: PostgresURL, fleet: String?, since: Int64?, until: Int64?, into path: String
    ) async throws -> [(table: String, rows: Int)] {
        let logger = Logger(label: "fusebox.analyze")
        let connection: PostgresConnection
        do {
            connection = try await FleetConnection.open(url, id: 1, logger: logger)
        } catch {
            throw Failure(description: FleetConnection.describe(error, url: url))
        }
        defer { Task { try? await connection.close() } }
        let found = try await connection.query(
            "SELECT count(*)::int FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'fusebox_schema'",
            logger: logger
        ).collect().first?.decode(Int.self) ?? 0
        guard found == 1 else { throw Failure(description: "\(url) holds no Fusebox fleet history (no fusebox_schema table)") }
        let version = try await connection.query("SELECT max(version) FROM fusebox_schema", logger: logger).collect().first?.decode(Int?.self) ?? nil
        guard let version, (1...FleetSchema.version).contains(version) else {
            throw Failure(description: "\(url) has fleet schema version \(version.map(String.init) ?? "none"); this build reads versions 1 to \(FleetSchema.version)")
        }

        let queue = try StoreDatabase.openForWriting(path)
        defer { try? queue.close() }
        // A day before --since, so an incident that began earlier is still seen whole (as in a local store).
        let low = since.map { $0 - 86_400_000 } ?? .min
        let high = until ?? .max
        let fleetFilter = fleet ?? ""
        var skipped: [(table: String, rows: Int)] = []

        for table in HistoryTables.all {
            let columns = table.columns
            let timeColumn: String
            switch table.local {
            case "runs": timeColumn = "coalesce(stopped_ms, \(Int64.max))"
            case "transitions", "failures": timeColumn = "at_ms"
            default: timeColumn = "bucket_ms"
            }
            let order: String
            switch table.progress {
            case .id, .latestRun: order = table.local == "runs" ? "started_ms, store_id, local_id" : "at_ms, store_id, local_id"
            case .bucket(let keys, _): order = keys.joined(separator: ", ")
            }
            // Columns a later version added are NULL in an older database.
            let missing = Set(FleetSchema.addedColumns.filter { $0.version > version && $0.table == table.remote }.flatMap(\.columns))
            let selected = columns.map { missing.contains($0) ? "NULL AS \($0)" : $0 }
            let select = "SELECT \(selected.joined(separator: ", ")) FROM \(table.remote) WHERE \(timeColumn) >= $1 AND "
                + (table.local == "runs" ? "started_ms <= $2" : "\(timeColumn) <= $2")
                + " AND ($3 = '' OR fleet = $3) ORDER BY \(order)"
            var binds = PostgresBindings()
            binds.append(low)
            binds.append(high)
            binds.append(fleetFilter)
            let rows = try await connection.query(PostgresQuery(unsafeSQL: select, binds: binds), logger: logger)
            let insert: String
            switch table.progress {
            case .id, .latestRun:
                insert = "INSERT INTO \(table.local) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
            case .bucket:
                let keyColumns = columns.filter { !table.updates.contains($0) }
                insert = "INSERT INTO \(table.local) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", "))) "
                    + "ON CONFLICT (\(keyColumns.joined(separator: ", "))) DO UPDATE SET "
                    + table.updates.map { "\($0) = \($0) + excluded.\($0)" }.joined(separator: ", ")
            }
            var batch: [[DatabaseValue]] = []
            func flush() throws {
                let pending = batch
                batch.removeAll(keepingCapacity: true)
                try queue.write { db in
                    let statement = try db.makeStatement(sql: insert)
                    for values in pending { try statement.execute(arguments: StatementArguments(values)) }
                }
            }
            var skippedHere = 0
            for try await row in rows {
                var values: [DatabaseValue] = []
                for cell in row { values.append(databaseValue(cell)) }
                guard values.allSatisfy(\.isFiniteOrNotReal) else {
                    skippedHere += 1
                    continue
                }
                batch.append(values)
                if batch.count >= 2_000 { try flush() }
            }
            try flush()
            if skippedHere > 0 { skipped.append((table.remote, skippedHere)) }
        }
        try await queue.write { db in
            try db.execute(sql: StoreSchema.rollup(into: "traffic_minutely", width: 60_000))
            try db.execute(sql: StoreSchema.rollup(into: "traffic_hourly", width: 3_600_000))
        }
        return skipped
    }

    /// One PostgreSQL cell as SQLite takes it.
    static func databaseValue(_ cell: PostgresCell) -> DatabaseValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map { $0.databaseValue } ?? .null
        case .float4, .float8, .numeric: return (try? cell.decode(Double.self)).map { $0.databaseValue } ?? .null
        default: return (try? cell.decode(String.self)).map { $0.databaseValue } ?? .null
        }
    }
}

extension DatabaseValue {
    /// False for NaN and the infinities, which no sidecar writes.
    fileprivate var isFiniteOrNotReal: Bool {
        if case .double(let value) = storage { return value.isFinite }
        return true
    }
}
