import GRDB

/// Checks, before any row is read, that a store holds only values a sidecar
/// writes: integers where integers belong, times between 1970 and 9999,
/// counts from 0 to 10^12, text where text belongs. A store edited by hand,
/// damaged or forged is refused with one clear line instead of trapping in a
/// conversion or an overflow halfway through the analysis. One scan per
/// table, driven by the schema's declared column types.
enum StoreSanity {
    static let latestTimeMs: Int64 = 253_402_300_799_999  // 9999-12-31T23:59:59.999Z
    static let largestCount: Int64 = 1_000_000_000_000

    static func check(_ db: Database, path: String) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        for table in tables {
            let columns = try Row.fetchAll(db, sql: "SELECT name, type FROM pragma_table_info(?)", arguments: [table])
            let conditions = columns.compactMap { row -> String? in condition(column: row[0], type: row[1]) }
            guard !conditions.isEmpty else { continue }
            let bad = try Int.fetchOne(db, sql: "SELECT count(*) FROM \"\(table)\" WHERE " + conditions.joined(separator: " OR ")) ?? 0
            if bad > 0 {
                throw AnalyzeError.store(
                    "\(path): table \(table) has \(bad) row(s) with values no sidecar writes (wrong type, a time outside 1970–9999, or a count outside 0–10^12); the file was altered or damaged, so it is not analysed"
                )
            }
        }
    }

    /// The SQL that is true for a bad value of one column, or nil when any value will do.
    static func condition(column: String, type: String) -> String? {
        let name = "\"\(column)\""
        switch type.uppercased() {
        case "INTEGER":
            let wrongType = "typeof(\(name)) NOT IN ('integer', 'null')"
            if column.hasSuffix("_ms") { return "\(wrongType) OR \(name) NOT BETWEEN 0 AND \(latestTimeMs)" }
            if ["id", "pid", "generation", "status", "last_status"].contains(column) { return wrongType }
            return "\(wrongType) OR \(name) NOT BETWEEN 0 AND \(largestCount)"
        case "REAL":
            return "typeof(\(name)) NOT IN ('real', 'integer', 'null') OR abs(\(name)) > 1e15"
        case "TEXT":
            return "typeof(\(name)) NOT IN ('text', 'null')"
        default:
            return nil
        }
    }
}
