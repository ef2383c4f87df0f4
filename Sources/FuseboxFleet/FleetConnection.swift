import FuseboxConfig
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// Opening connections to the fleet's PostgreSQL, and saying in plain words
/// why one failed (a wrong password, a missing database, nobody listening).
enum FleetConnection {
    static func configuration(_ url: PostgresURL) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socket = url.socketPath {
            configuration = .init(unixSocketPath: socket, username: url.user, password: url.password, database: url.database)
        } else {
            configuration = .init(host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
                                  database: url.database, tls: .disable)
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    static func open(_ url: PostgresURL, id: Int, logger: Logger) async throws -> PostgresConnection {
        var quiet = logger
        quiet.logLevel = .critical  // postgres-nio's own lines would repeat ours
        return try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration(url), id: id, logger: quiet
        )
    }

    /// One line on what went wrong, with PostgreSQL's SQLSTATE where it sent one.
    static func describe(_ error: any Error, url: PostgresURL) -> String {
        if let problem = error as? FleetSchema.Problem { return problem.description }
        if let failed = error as? PostgresTransactionError {
            // The error inside the transaction says what happened; the wrapper only where.
            if let inner = failed.closureError ?? failed.beginError ?? failed.commitError { return describe(inner, url: url) }
        }
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            let state = info[.sqlState] ?? ""
            let message = info[.message] ?? "server error"
            switch state {
            case "28P01", "28000": return "PostgreSQL refused the login for user \(url.user) (\(message)) [\(state)]"
            case "3D000": return "the database \(url.database) does not exist on \(url) [\(state)]"
            default: return "PostgreSQL: \(message) [\(state)]"
            }
        }
        if error.code == .connectionError, let underlying = error.underlying {
            return "cannot connect to \(url): \(underlying)"
        }
        if error.code == .authMechanismRequiresPassword { return "PostgreSQL asks user \(url.user) for a password and the URL has none" }
        return "PostgreSQL connection: \(error.code)"
    }
}
