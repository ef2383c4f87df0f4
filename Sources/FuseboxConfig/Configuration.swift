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
