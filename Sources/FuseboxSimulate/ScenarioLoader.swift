import FuseboxConfig
import FuseboxCore

/// Reads a YAML scenario file; every key optional, starting from the reference.
///
/// ```yaml
/// duration: 10m
/// rate_per_minute: 100
/// arrivals: poisson          # or uniform
/// seed: 7
/// client_timeout: 30s
/// chain: [openai, anthropic, ollama]
/// providers:
///   openai:
///     median: 800ms
///     p99: 3s
///     faults:
///       - { start: 2m, length: 5m, mode: timeout }
///       - { start: 8m, length: 1m, mode: error, status: 429, retry_after: 20s, ratio: 0.5 }
///     rate_limit: 600        # requests per minute; above it, 429 with Retry-After
///   anthropic: { median: 1s, p99: 4s }
/// retry: { retries: 3, base: 2s, cap: 10s }
/// policy:                    # the breaker policy, same keys as a breaker in fusebox.yaml
///   open: { duration: 30s }
/// ```
public enum ScenarioLoader {
    public static func load(path: String) throws(ConfigError) -> Scenario {
        try load(yaml: ConfigLoader.readText(path), file: path)
    }

    public static func load(yaml: String, file: String) throws(ConfigError) -> Scenario {
        var scenario = Scenario.reference
        guard let root = try ConfigLoader.root(yaml: yaml, file: file) else { return scenario }
        let keys = ["duration", "rate_per_minute", "rate_per_second", "arrivals", "seed", "start", "client_timeout",
                    "chain", "providers", "retry", "policy"]
        var providersNode: ConfigNode?
        for (key, value) in try root.mapping(allowed: keys) {
            switch key {
            case "duration": scenario.duration = try value.duration()
            case "rate_per_minute": scenario.rate = try value.double(0...6_000_000, lowerOpen: true) / 60
            case "rate_per_second": scenario.rate = try value.double(0...100_000, lowerOpen: true)
            case "arrivals":
                let text = try value.string()
                guard let arrivals = Scenario.Arrivals(rawValue: text) else { throw value.error("must be uniform or poisson, got \"\(text)\"") }
                scenario.arrivals = arrivals
            case "seed": scenario.seed = UInt64(try value.int(0...Int.max))
            case "start":
                guard let start = Timestamp(rfc3339: try value.string()) else { throw value.error("expected an RFC 3339 time such as 2026-01-01T00:00:00Z") }
                scenario.start = start
            case "client_timeout": scenario.clientTimeout = try value.duration()
            case "chain":
                scenario.chain = try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> String in try item.string() }
                guard !scenario.chain.isEmpty else { throw value.error("a chain needs at least one provider") }
            case "providers": providersNode = value
            case "retry":
                for (retryKey, retryValue) in try value.mapping(allowed: ["retries", "base", "cap"]) {
                    switch retryKey {
                    case "retries": scenario.retry.retries = try retryValue.int(0...20)
                    case "base": scenario.retry.base = try retryValue.duration()
                    default: scenario.retry.cap = try retryValue.duration()
                    }
                }
            default:
                var policy = BreakerPolicy.default
                try PolicyReader.apply(value, to: &policy)
                scenario.policy = policy
            }
        }
        if let providersNode {
            var models: [ProviderModel] = []
            for (name, value) in try providersNode.mapping() {
                models.append(try provider(name, value, base: scenario.provider(name)))
            }
            // Providers not described keep the reference's model (or a default one).
            for name in scenario.chain where !models.contains(where: { $0.name == name }) {
                models.append(scenario.provider(name) ?? ProviderModel(name: name, median: .seconds(1), p99: .seconds(3)))
            }
            scenario.providers = models
        }
        for name in scenario.chain where scenario.provider(name) == nil {
            scenario.providers.append(ProviderModel(name: name, median: .seconds(1), p99: .seconds(3)))
        }
        return scenario
    }

    static func provider(_ name: String, _ node: ConfigNode, base: ProviderModel?) throws(ConfigError) -> ProviderModel {
        var model = base ?? ProviderModel(name: name, median: .seconds(1), p99: .seconds(3))
        model.faults = []
        for (key, value) in try node.mapping(allowed: ["median", "p99", "faults", "rate_limit"]) {
            switch key {
            case "median": model.median = try value.duration()
            case "rate_limit": model.rateLimit = value.isOff ? nil : try value.int(1...10_000_000)
            case "p99": model.p99 = try value.duration()
            default:
                model.faults = try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> FaultWindow in try fault(item) }
            }
        }
        guard model.p99 >= model.median else { throw node.error("p99 must be at least the median") }
        return model
    }

    static func fault(_ node: ConfigNode) throws(ConfigError) -> FaultWindow {
        var start = Duration.zero, length = Duration.seconds(60), ratio = 1.0
        var mode = "timeout", status = 503, retryAfter: Duration?, latency = Duration.seconds(20)
        for (key, value) in try node.mapping(allowed: ["start", "length", "mode", "status", "retry_after", "latency", "ratio"]) {
            switch key {
            case "start": start = try value.duration(allowZero: true)
            case "length": length = try value.duration(allowZero: true)
            case "mode": mode = try value.string()
            case "status": status = try value.int(400...599)
            case "retry_after": retryAfter = try value.duration()
            case "latency": latency = try value.duration()
            default: ratio = try value.double(0...1, lowerOpen: true)
            }
        }
        switch mode {
        case "timeout": return FaultWindow(start: start, length: length, mode: .timeout, ratio: ratio)
        case "error": return FaultWindow(start: start, length: length, mode: .error(status: status, retryAfter: retryAfter), ratio: ratio)
        case "slow": return FaultWindow(start: start, length: length, mode: .slow(latency), ratio: ratio)
        default: throw node.error("mode must be timeout, error or slow; got \"\(mode)\"")
        }
    }
}
