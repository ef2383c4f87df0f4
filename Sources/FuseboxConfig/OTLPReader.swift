import FuseboxCore

/// Where and how often the sidecar pushes its metrics and transition logs
/// over OTLP/HTTP (`otlp:`); read at start only.
public struct OTLPSettings: Sendable, Equatable {
    /// The collector's base URL; metrics go to `<endpoint>/v1/metrics`, logs to `<endpoint>/v1/logs`.
    public var endpoint: String
    public var interval: Duration = .seconds(15)
    /// Sent with every export, `${VAR}`s taken from the environment at start (as for probes).
    public var headers: [ProbeHeader] = []
    /// One export's longest wait for the collector.
    public var timeout: Duration = .seconds(10)

    public init(endpoint: String) { self.endpoint = endpoint }
}

enum OTLPReader {
    static func settings(_ node: ConfigNode) throws(ConfigError) -> OTLPSettings {
        var settings: OTLPSettings?
        var interval: Duration?, timeout: Duration?, headers: [ProbeHeader] = []
        for (key, value) in try node.mapping(allowed: ["endpoint", "interval", "headers", "timeout"]) {
            switch key {
            case "endpoint": settings = OTLPSettings(endpoint: try endpoint(value))
            case "interval":
                let every = try value.duration(maximum: .seconds(3_600))
                guard every >= .seconds(1) else { throw value.error("an export interval is at least 1s") }
                interval = every
            case "timeout":
                let limit = try value.duration(maximum: .seconds(300))
                guard limit >= .milliseconds(100) else { throw value.error("an export timeout is at least 100ms") }
                timeout = limit
            default: headers = try ProbeReader.headers(value)
            }
        }
        guard var settings else { throw node.error("needs endpoint: the collector's OTLP/HTTP base URL, such as http://127.0.0.1:4318") }
        if let interval { settings.interval = interval }
        if let timeout { settings.timeout = timeout }
        settings.headers = headers
        return settings
    }

    /// An http:// or https:// base URL without query or fragment; a trailing slash is dropped.
    private static func endpoint(_ node: ConfigNode) throws(ConfigError) -> String {
        var url = try node.string()
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), url.utf8.count <= 2_048,
              url.utf8.allSatisfy({ $0 > 32 && $0 < 127 }), !url.contains("?"), !url.contains("#")
        else { throw node.error("expected an http:// or https:// base URL (no query, at most 2048 bytes), got \"\(url.prefix(80))\"") }
        while url.hasSuffix("/") { url.removeLast() }
        guard url.split(separator: "/").count >= 2 else { throw node.error("the URL has no host: \"\(url.prefix(80))\"") }
        return url
    }
}
