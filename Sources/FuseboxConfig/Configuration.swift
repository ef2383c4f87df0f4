import FuseboxCore

/// Where the sidecar's HTTP endpoints listen.
public struct HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Where log lines go.
public enum LogDestination: Sendable, Equatable, CustomStringConvertible {
    case stdout
    case stderr
    case file(String)

    public var description: String {
        switch self {
        case .stdout: return "stdout"
        case .stderr: return "stderr"
        case .file(let path): return path
        }
    }
}

/// Everything a configuration file says: the sidecar's settings and the
/// engine's breakers and chains. Every key is optional; see `DefaultConfiguration`.
public struct Configuration: Sendable, Equatable {
    public var socket: String = "./fusebox.sock"
    /// `nil` when `admin_socket: off`.
    public var adminSocket: String? = "./fusebox-admin.sock"
    /// Permission bits of both socket files.
    public var socketMode: UInt32 = 0o600
    /// Connections open at once across both sockets; more are answered `overloaded`.
    public var maxConnections: Int = 1_000
    /// Connections open at once on the admin socket, counted apart so apps can never lock the operator out.
    public var maxAdminConnections: Int = 16
    /// Unreported permits one connection may hold; more acquires are answered `overloaded`.
    public var maxPermitsPerConnection: Int = 1_024
    /// A socket connection that sends nothing for this long, holding no permit,
    /// no queued acquire and no subscription, is closed; `nil` never.
    public var idleTimeout: Duration? = .seconds(600)
    /// After SIGTERM, connections get this long to finish before they are closed.
    public var shutdownTimeout: Duration = .seconds(10)
    /// How often to look whether the configuration file changed, and reload
    /// when it did (a Kubernetes ConfigMap update); `nil` only on SIGHUP.
    public var watchConfig: Duration?
    /// Credentials in reported error text are masked before they are kept anywhere.
    public var redactErrors = true
    /// Whether breaker states are posted in `<socket>.state` for the clients' fast path.
    public var fastPath = true
    /// HTTP: connections at most, how long a request's headers may take, how long an idle connection stays.
    public var httpMaxConnections: Int = 128
    public var httpHeaderTimeout: Duration = .seconds(10)
    public var httpIdleTimeout: Duration = .seconds(60)
    /// Whether HTTP serves `/v1/breakers` (breaker names, states and last errors) besides metrics and health.
    public var httpJSON = true
    /// When set, only peers with these user ids (checked with SO_PEERCRED) may talk on either socket.
    public var allowedUIDs: [UInt32]?
    /// `nil` when `http: off`.
    public var http: HTTPEndpoint? = HTTPEndpoint(host: "127.0.0.1", port: 9464)
    /// `nil` when `store: off`.
    public var store: String? = "./fusebox.db"
    /// Store rows older than this are pruned; `nil` (`retention: off`) keeps them all.
    public var retention: Duration? = .seconds(90 * 86_400)
    /// Written into every log line and stored row; `hostname` means this host's name.
    public var instance: String = "hostname"
    public var log: LogDestination = .stdout
    /// The least severe log line written (docs/logs.md).
    public var logLevel: LogLevel = .info
    /// `nil` without a `fleet:` section: one host, no PostgreSQL.
    public var fleet: FleetSettings?
    /// Metrics and transition logs pushed to an OpenTelemetry collector; off by default.
    public var otlp: OTLPSettings?
    /// The policy every breaker starts from before its own overrides.
    public var defaults: BreakerPolicy = .default
    public var engine: EngineConfiguration

    public init(engine: EngineConfiguration) {
        self.engine = engine
    }

    /// `instance`, with the word `hostname` replaced by this host's name.
    public var resolvedInstance: String {
        instance == "hostname" ? HostName.current : instance
    }
}

/// `log_level`: the standard names, least severe first.
public enum LogLevel: String, Sendable, CaseIterable, Comparable {
    case trace, debug, info, warn, error

    public static func < (a: LogLevel, b: LogLevel) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
