#if canImport(Glibc)
import Glibc
#endif
import FuseboxCore

/// Reads the `fleet:` section, and checks that fleet-scoped budgets have a fleet to share.
enum FleetReader {
    static let keys = ["postgres", "name", "refresh", "lease", "ship_interval", "retention", "assumed_peers", "secret_file"]

    static func settings(_ node: ConfigNode) throws(ConfigError) -> FleetSettings {
        let entries = try node.mapping(allowed: keys)
        let fromEnvironment = getenv(FleetSettings.postgresVariable).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        let urlNode = entries.first { $0.key == "postgres" }?.value
        var fromFile: String?
        if let urlNode { fromFile = try urlNode.string() }
        guard let text = fromEnvironment ?? fromFile else {
            throw node.error("needs postgres: a postgresql:// URL (or set \(FleetSettings.postgresVariable))")
        }
        let url: PostgresURL
        do {
            url = try PostgresURL(parsing: text)
        } catch {
            let source = fromEnvironment != nil ? "\(FleetSettings.postgresVariable): " : ""
            throw (urlNode ?? node).error(source + error.description)
        }
        var settings = FleetSettings(postgres: url, secret: try secret(node, entries))
        for (key, value) in entries {
            switch key {
            case "name":
                let name = try value.string()
                try ConfigLoader.checkName(name, at: value, what: "a fleet name")
                settings.name = name
            case "refresh": settings.refresh = try bounded(value, .milliseconds(100), .seconds(60))
            case "lease": settings.lease = try bounded(value, .seconds(1), .seconds(3_600))
            case "ship_interval": settings.shipInterval = try bounded(value, .milliseconds(100), .seconds(3_600))
            case "retention": settings.retention = value.isOff ? nil : try value.duration(maximum: DurationText.maximumRetention)
            case "assumed_peers": settings.assumedPeers = try value.int(1...100_000)
            default: break
            }
        }
        if settings.lease < settings.refresh * 2 {
            throw node.error("lease (\(DurationText.format(settings.lease))) must be at least twice refresh (\(DurationText.format(settings.refresh))), or leases lapse between renewals")
        }
        return settings
    }

    /// `FUSEBOX_FLEET_SECRET`, else `secret_file`; one of them is required,
    /// as an unsigned channel would let any role that can connect drive the fleet.
    private static func secret(_ node: ConfigNode, _ entries: [(key: String, value: ConfigNode)]) throws(ConfigError) -> FleetSecret {
        let fileNode = entries.first { $0.key == "secret_file" }?.value
        let outcome: Result<FleetSecret, FleetSecret.SecretProblem>
        if let value = getenv(FleetSecret.variable), value.pointee != 0 {
            outcome = FleetSecret.checked(Array(String(cString: value).utf8), source: FleetSecret.variable)
        } else if let fileNode {
            outcome = FleetSecret.load(file: try fileNode.string())
        } else {
            throw node.error("needs secret_file: the path of a file holding the fleet's secret (or set \(FleetSecret.variable)), \(FleetSecret.hint)")
        }
        switch outcome {
        case .success(let secret): return secret
        case .failure(let problem): throw (fileNode ?? node).error(problem.description)
        }
    }

    private static func bounded(_ node: ConfigNode, _ low: Duration, _ high: Duration) throws(ConfigError) -> Duration {
        let value = try node.duration(maximum: high)
        guard value >= low else { throw node.error("at least \(DurationText.format(low))") }
        return value
    }

    /// `scope: fleet` needs a `fleet:` section and a breaker that takes part in it.
    static func checkScopes(_ config: Configuration, fleetNode: ConfigNode?, breakersNode: ConfigNode?) throws(ConfigError) {
        for breaker in config.engine.breakers where !breaker.policy.budget.fleetScoped.isEmpty {
            let at = (try? breakersNode?.mapping().first { $0.key == breaker.name }?.value) ?? breakersNode ?? fleetNode
            guard let at else { continue }
            if config.fleet == nil {
                throw at.error("a budget with scope: fleet needs a fleet: section (PostgreSQL) to share it through")
            }
            if !breaker.policy.fleetShared {
                throw at.error("fleet: false keeps this breaker local, so its budgets cannot have scope: fleet")
            }
        }
    }
}
