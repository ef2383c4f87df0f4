import FuseboxCore

/// Writes a configuration back as complete YAML, every key spelled out: what
/// `fusebox check` prints and what a run records as its effective config.
/// Loading the output gives the same configuration back.
public enum ConfigRenderer {
    public static func yaml(_ config: Configuration) -> String {
        var lines: [String] = []
        lines.append("socket: \(quoted(config.socket))")
        lines.append("admin_socket: \(config.adminSocket.map(quoted) ?? "off")")
        lines.append("socket_mode: \"0\(String(config.socketMode, radix: 8))\"")
        lines.append("max_connections: \(config.maxConnections)")
        lines.append("max_admin_connections: \(config.maxAdminConnections)")
        lines.append("max_permits_per_connection: \(config.maxPermitsPerConnection)")
        lines.append("idle_timeout: \(config.idleTimeout.map(DurationText.format) ?? "off")")
        lines.append("shutdown_timeout: \(DurationText.format(config.shutdownTimeout))")
        lines.append("watch_config: \(config.watchConfig.map(DurationText.format) ?? "off")")
        lines.append("redact_errors: \(config.redactErrors)")
        lines.append("fast_path: \(config.fastPath)")
        lines.append("allowed_uids: \(config.allowedUIDs.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? "off")")
        lines.append("http: \(config.http.map { quoted($0.description) } ?? "off")")
        lines.append("http_max_connections: \(config.httpMaxConnections)")
        lines.append("http_header_timeout: \(DurationText.format(config.httpHeaderTimeout))")
        lines.append("http_idle_timeout: \(DurationText.format(config.httpIdleTimeout))")
        lines.append("http_json: \(config.httpJSON)")
        lines.append("store: \(config.store.map(quoted) ?? "off")")
        lines.append("retention: \(config.retention.map(DurationText.format) ?? "off")")
        lines.append("instance: \(quoted(config.instance))")
        lines.append("log: \(quoted(config.log.description))")
        lines.append("log_level: \(config.logLevel.rawValue)")
        if let fleet = config.fleet {
            lines.append("fleet:")
            lines.append("  postgres: \(quoted(fleet.postgres.description))")
            lines.append("  name: \(quoted(fleet.name))")
            // Where the secret comes from, never the secret.
            if fleet.secret.source == FleetSecret.variable {
                lines.append("  # secret from \(FleetSecret.variable)")
            } else {
                lines.append("  secret_file: \(quoted(fleet.secret.source))")
            }
            lines.append("  refresh: \(DurationText.format(fleet.refresh))")
            lines.append("  lease: \(DurationText.format(fleet.lease))")
            lines.append("  ship_interval: \(DurationText.format(fleet.shipInterval))")
            lines.append("  retention: \(fleet.retention.map(DurationText.format) ?? "off")")
            lines.append("  assumed_peers: \(fleet.assumedPeers)")
        } else {
            lines.append("fleet: off")
        }
        if let otlp = config.otlp {
            lines.append("otlp:")
            lines.append("  endpoint: \(quoted(otlp.endpoint))")
            lines.append("  interval: \(DurationText.format(otlp.interval))")
            lines.append("  timeout: \(DurationText.format(otlp.timeout))")
            // Templates only: a header's value may hold a token.
            let headers = otlp.headers.map { "\(quoted($0.name)): \(quoted($0.template))" }.joined(separator: ", ")
            lines.append("  headers: {\(headers.isEmpty ? "" : " \(headers) ")}")
        } else {
            lines.append("otlp: off")
        }
        lines.append("defaults:")
        lines += policy(config.defaults).map { "  " + $0 }
        lines.append(config.engine.breakers.isEmpty ? "breakers: {}" : "breakers:")
        for breaker in config.engine.breakers where !breaker.name.contains("/") {
            lines.append("  \(name(breaker.name)):")
            lines += policy(breaker.policy).map { "    " + $0 }
            // Its per-model breakers, each with its whole policy, under `models`.
            let models = config.engine.breakers.filter { $0.name.hasPrefix(breaker.name + "/") }
            if !models.isEmpty { lines.append("    models:") }
            for model in models {
                lines.append("      \(name(String(model.name.dropFirst(breaker.name.utf8.count + 1)))):")
                lines += policy(model.policy).map { "        " + $0 }
            }
        }
        lines.append(config.engine.chains.isEmpty ? "chains: {}" : "chains:")
        for chain in config.engine.chains {
            let members = "[\(chain.breakers.map(name).joined(separator: ", "))]"
            switch chain.strategy {
            case .ordered: lines.append("  \(name(chain.name)): \(members)")
            case .cheapest: lines.append("  \(name(chain.name)): { breakers: \(members), strategy: cheapest }")
            case .fastest(let p):
                lines.append("  \(name(chain.name)): { breakers: \(members), strategy: fastest, margin: \(p.margin.formatted), window: \(DurationText.format(p.window)) }")
            case .weighted(let weights):
                let table = chain.breakers.compactMap { member in weights[member].map { "\(name(member)): \($0)" } }.joined(separator: ", ")
                lines.append("  \(name(chain.name)): { breakers: \(members), strategy: weighted, weights: { \(table) } }")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One policy as YAML lines (unindented).
    public static func policy(_ p: BreakerPolicy) -> [String] {
        var lines = ["trip:"]
        lines.append("  consecutive_failures: \(p.trip.consecutiveFailures.map(String.init) ?? "off")")
        lines.append("  failure_rate: \(p.trip.failureRate.map(\.formatted) ?? "off")")
        switch p.trip.window {
        case nil: lines.append("  window: off")
        case .count(let size): lines.append("  window: { kind: count, size: \(size) }")
        case .time(let seconds, let buckets): lines.append("  window: { kind: time, seconds: \(seconds), buckets: \(buckets) }")
        }
        lines.append("  minimum_calls: \(p.trip.minimumCalls)")
        if let slow = p.trip.slowCall {
            lines.append("  slow_call: { threshold_ms: \(slow.threshold.millisecondsClamped), rate: \(slow.rate.formatted) }")
        } else {
            lines.append("  slow_call: off")
        }
        lines.append("open:")
        lines.append("  duration: \(DurationText.format(p.open.duration))")
        lines.append("  backoff: { multiplier: \(p.open.backoffMultiplier.formatted), max: \(DurationText.format(p.open.backoffMax)) }")
        lines.append("  jitter: \(p.open.jitter.formatted)")
        lines.append("  honor_retry_after: \(p.open.honorRetryAfter)")
        lines.append("  max_retry_after: \(p.open.maxRetryAfter.map(DurationText.format) ?? "off")")
        lines.append("half_open:")
        lines.append("  probes: \(p.halfOpen.probes)")
        lines.append("  successes_to_close: \(p.halfOpen.successesToClose)")
        lines.append("  max_wait: \(DurationText.format(p.halfOpen.maxWait))")
        lines.append("classify:")
        lines.append("  failure: [\(p.classify.failure.map(rule).joined(separator: ", "))]")
        lines.append("  ignore: [\(p.classify.ignore.map(rule).joined(separator: ", "))]")
        lines.append("permit_ttl: \(DurationText.format(p.permitTTL))")
        lines.append("max_transitions_per_minute: \(p.maxTransitionsPerMinute.map(String.init) ?? "off")")
        let budget = p.budget
        func scope(_ kind: FleetScopedBudgets) -> String { budget.fleetScoped.contains(kind) ? ", scope: fleet" : "" }
        lines.append("max_in_flight: \(budget.maxInFlight.map { budget.fleetScoped.contains(.maxInFlight) ? "{ max: \($0), scope: fleet }" : String($0) } ?? "off")")
        lines.append("queue: \(budget.queue.map { "{ max: \($0.max), timeout: \(DurationText.format($0.timeout)) }" } ?? "off")")
        lines.append("rate: \(budget.rate.map { "{ requests: \($0.amount), per: \(DurationText.format($0.period))\(scope(.rate)) }" } ?? "off")")
        lines.append("tokens: \(budget.tokens.map { "{ budget: \($0.amount), per: \(DurationText.format($0.period))\(scope(.tokens)) }" } ?? "off")")
        lines.append("fleet: \(p.fleetShared)")
        lines.append("capabilities: [\(p.capabilities.joined(separator: ", "))]")
        if let cost = p.cost {
            let parts = [("input_per_1k", cost.inputPer1k), ("output_per_1k", cost.outputPer1k), ("weight", cost.weight)]
                .compactMap { key, value in value.map { "\(key): \($0.formatted)" } }
            lines.append("cost: { \(parts.joined(separator: ", ")) }")
        } else {
            lines.append("cost: off")
        }
        lines += probe(p.probe)
        return lines
    }

    /// Header values as written (`${VAR}` kept): a secret never reaches `check` output or a run's recorded config.
    private static func probe(_ probe: ProbePolicy?) -> [String] {
        guard let probe else { return ["probe: off"] }
        var lines = ["probe:", "  http:"]
        lines.append("    url: \(quoted(probe.url))")
        lines.append("    method: \(probe.method)")
        let headers = probe.headers.map { "\(quoted($0.name)): \(quoted($0.template))" }.joined(separator: ", ")
        lines.append("    headers: {\(headers.isEmpty ? "" : " \(headers) ")}")
        lines.append("    body: \(probe.body.map(quoted) ?? "~")")
        lines.append("    expect_status: [\(probe.expectStatus.map(rule).joined(separator: ", "))]")
        lines.append("    timeout: \(DurationText.format(probe.timeout))")
        lines.append("  interval: \(probe.interval.map(DurationText.format) ?? "off")")
        lines.append("  mode: \(probe.mode.rawValue)")
        lines.append("  closed_interval: \(probe.closedInterval.map(DurationText.format) ?? "off")")
        return lines
    }

    private static func rule(_ rule: StatusRule) -> String {
        if case .statusClass = rule { return "\"\(rule)\"" }
        return rule.description
    }

    /// A breaker or chain name: plain when it starts with a letter, digit or
    /// underscore (the usual case), quoted when YAML could read it as syntax.
    static func name(_ text: String) -> String {
        guard let first = text.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first) || first == "_",
              !text.contains(":") else { return quoted(text) }
        return text
    }

    /// A double-quoted YAML scalar. Anything a YAML reader would fold, refuse
    /// or take as a line break (controls, DEL, C1, U+2028/2029, BOM,
    /// noncharacters) is escaped, so the text loads back exactly.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            let v = scalar.value
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                let printable = (0x20...0x7E).contains(v) || (v >= 0xA0 && v != 0x2028 && v != 0x2029 && v != 0xFEFF
                    && !(0xFDD0...0xFDEF).contains(v) && v & 0xFFFE != 0xFFFE)
                if printable {
                    out.unicodeScalars.append(scalar)
                } else if v <= 0xFFFF {
                    out += "\\u" + String(v, radix: 16).leftPadded(4)
                } else {
                    out += "\\U" + String(v, radix: 16).leftPadded(8)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
