import FuseboxConfig
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// Opening connections to the fleet's PostgreSQL, and saying in plain words
/// why one failed (a wrong password, a missing database, nobody listening).
enum FleetConnection {
    struct TLSProblem: Error, CustomStringConvertible {
        var description: String
    }

    static func configuration(_ url: PostgresURL) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socket = url.socketPath {
            configuration = .init(unixSocketPath: socket, username: url.user, password: url.password, database: url.database)
        } else {
            configuration = .init(host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password,
                                  database: url.database, tls: try tls(url))
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// libpq's `sslmode`: `require` encrypts and checks the CA only when
    /// `sslrootcert` names one; `verify-ca` checks the CA; `verify-full` the
    /// CA and the host name. TLS is required in all three: never a fallback
    /// to plain text.
    static func tls(_ url: PostgresURL) throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch url.sslMode {
        case .disable: return .disable
        case .require: tls.certificateVerification = url.sslRootCert == nil ? .none : .noHostnameVerification
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        do {
            if let root = url.sslRootCert { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(root)) }
            if let cert = url.sslCert, let key = url.sslKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            return .require(try NIOSSLContext(configuration: tls))
        } catch {
            throw TLSProblem(description: "cannot use the TLS files of \(url): \(error)")
        }
    }

    static func open(_ url: PostgresURL, id: Int, logger: Logger) async throws -> PostgresConnection {
        var quiet = logger
        quiet.logLevel = .critical  // postgres-nio's own lines would repeat ours
        return try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.any(), configuration: try configuration(url), id: id, logger: quiet
        )
    }

    /// One line on what went wrong, with PostgreSQL's SQLSTATE where it sent one.
    static func describe(_ error: any Error, url: PostgresURL) -> String {
        if let problem = error as? FleetSchema.Problem { return problem.description }
        if let problem = error as? TLSProblem { return problem.description }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError { return tlsRefusal(error, url: url) }
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
            if underlying is NIOSSLError || underlying is NIOSSLExtraError || underlying is BoringSSLError {
                return tlsRefusal(underlying, url: url)
            }
            return "cannot connect to \(url): \(Self.oneLine(underlying))"
        }
        if error.code == .sslUnsupported { return "\(url) asks for TLS and the server does not offer it (its ssl setting is off)" }
        if error.code == .authMechanismRequiresPassword { return "PostgreSQL asks user \(url.user) for a password and the URL has none" }
        return "PostgreSQL connection: \(error.code)"
    }

    /// Why a TLS handshake failed, in the words of the URL's settings.
    static func tlsRefusal(_ error: any Error, url: PostgresURL) -> String {
        let text = oneLine(error)
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "TLS with \(url) failed: the server's certificate is not issued for \(url.host ?? "the host") (sslmode=verify-full checks the name)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS with \(url) failed: the server's certificate is not signed by a trusted CA (\(url.sslRootCert.map { "sslrootcert=\($0)" } ?? "the system's roots"))"
        }
        return "TLS with \(url) failed: \(text)"
    }

    /// An error's text on one line (BoringSSL's stacks span several).
    static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
