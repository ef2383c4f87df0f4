import FuseboxConfig
import Logging
import PostgresNIO

/// Least privilege for the sidecars' role: the tables made once by an owner
/// (`fusebox fleet init`), and per table only the statements a sidecar runs
/// on it; no DDL, TRUNCATE, REFERENCES or TRIGGER.
public enum FleetGrants {
    /// Per table, what sidecars do there (`ON CONFLICT … DO UPDATE` and `RETURNING` need SELECT).
    static let privileges: [(table: String, privileges: String)] = [
        ("fusebox_schema", "SELECT"),  // the version check at connect
        ("fleet_breakers", "SELECT, INSERT, UPDATE"),  // openings; read at catch-up
        ("fleet_probes", "SELECT, INSERT, UPDATE, DELETE"),  // probe leases, handed back by delete
        ("fleet_leases", "SELECT, INSERT, UPDATE, DELETE"),  // budget shares; lapsed rows deleted
        ("history_runs", "SELECT, INSERT, UPDATE, DELETE"),  // shipped, read by analyze, pruned by retention
        ("history_transitions", "SELECT, INSERT, UPDATE, DELETE"),
        ("history_failures", "SELECT, INSERT, UPDATE, DELETE"),
        ("history_traffic", "SELECT, INSERT, UPDATE, DELETE"),
        ("history_routes", "SELECT, INSERT, UPDATE, DELETE"),
        ("history_watermarks", "SELECT, INSERT, UPDATE"),  // the shipper's progress
    ]

    /// A role name as a quoted SQL identifier, or nil when it is not a plausible role name.
    static func quoted(role: String) -> String? {
        guard !role.isEmpty, role.utf8.count <= 63, role.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else { return nil }
        return "\"" + role.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The script an owner runs once: the tables at this build's schema version, then the grants.
    public static func script(role: String?) throws -> String {
        var lines = ["-- Fusebox fleet schema version \(FleetSchema.version), made once by the tables' owner.", "BEGIN;"]
        for statement in FleetSchema.creation { lines.append(statement + ";") }
        if let role { lines += try grants(role: role).map { $0 + ";" } }
        lines.append("COMMIT;")
        return lines.joined(separator: "\n")
    }

    static func grants(role: String) throws -> [String] {
        guard let name = quoted(role: role) else {
            throw FleetSchema.Problem(description: "--role \"\(role)\": a PostgreSQL role name is 1 to 63 bytes without control characters")
        }
        return privileges.map { "GRANT \($0.privileges) ON \($0.table) TO \(name)" }
    }

    /// Creates or migrates the tables over `url` (its user becomes their owner), then grants `role` what sidecars use.
    public static func initialize(_ url: PostgresURL, role: String?) async throws {
        let logger = Logger(label: "fusebox.fleet.init")
        let statements = try role.map(grants(role:)) ?? []
        let connection = try await FleetConnection.open(url, id: 1, logger: logger)
        do {
            try await FleetSchema.prepare(connection, logger: logger)
            for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            try await connection.close()
        } catch {
            try? await connection.close()
            throw FleetInitProblem(description: FleetConnection.describe(error, url: url))
        }
    }

    public struct FleetInitProblem: Error, CustomStringConvertible {
        public var description: String
    }
}
