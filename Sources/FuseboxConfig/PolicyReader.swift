import FuseboxCore

/// Applies a policy mapping (`defaults:` or one breaker's section) on top of
/// a starting policy: only the keys written change, so a breaker inherits
/// everything else from `defaults`.
package enum PolicyReader {
    static let sections = [
        "trip", "open", "half_open", "classify", "permit_ttl", "max_in_flight", "queue", "rate", "tokens", "max_transitions_per_minute",
        "fleet", "probe", "capabilities", "cost",
    ]

    /// `extra`: keys the caller reads itself (a breaker's `models`), skipped here.
    package static func apply(_ node: ConfigNode, to policy: inout BreakerPolicy, extra: [String] = []) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: sections + extra) where !extra.contains(key) {
            switch key {
            case "trip": try applyTrip(value, to: &policy.trip)
            case "open": try applyOpen(value, to: &policy.open)
            case "half_open": try applyHalfOpen(value, to: &policy.halfOpen)
            case "classify": try applyClassify(value, to: &policy.classify)
            case "max_in_flight":
                if value.isOff {
                    policy.budget.maxInFlight = nil
                } else if value.isMapping {
                    for (key, item) in try value.mapping(allowed: ["max", "scope"]) {
                        if key == "max" { policy.budget.maxInFlight = try item.int(1...1_000_000) } else {
                            try scope(item, .maxInFlight, &policy.budget.fleetScoped)
                        }
                    }
                    if policy.budget.maxInFlight == nil { throw value.error("needs max: how many permits at once") }
                } else {
                    policy.budget.maxInFlight = try value.int(1...1_000_000)
                }
            case "fleet": policy.fleetShared = try value.bool()
            case "probe": policy.probe = value.isOff ? nil : try ProbeReader.probe(value, current: policy.probe)
            case "capabilities":
                policy.capabilities = try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> String in
                    let name = try item.string()
                    try ConfigLoader.checkName(name, at: item, what: "A capability")
                    return name
                }
            case "cost": policy.cost = value.isOff ? nil : try cost(value)
            case "queue": policy.budget.queue = value.isOff ? nil : try queue(value, current: policy.budget.queue)
            case "rate":
                policy.budget.rate = value.isOff ? nil : try rateLimit(value, amountKey: "requests", current: policy.budget.rate,
                                                                     scope: .rate, scoped: &policy.budget.fleetScoped)
            case "tokens":
                policy.budget.tokens = value.isOff ? nil : try rateLimit(value, amountKey: "budget", current: policy.budget.tokens,
                                                                       scope: .tokens, scoped: &policy.budget.fleetScoped)
            case "max_transitions_per_minute": policy.maxTransitionsPerMinute = value.isOff ? nil : try value.int(3...10_000)
            default: policy.permitTTL = try value.duration()
            }
        }
        if policy.budget.queue != nil, policy.budget.maxInFlight == nil {
            throw node.error("queue needs max_in_flight: acquires queue for a slot under that cap")
        }
        if let probe = policy.probe, probe.isActive, probe.timeout >= policy.halfOpen.maxWait {
            throw node.error(
                "probe.http.timeout (\(DurationText.format(probe.timeout))) must be shorter than half_open.max_wait (\(DurationText.format(policy.halfOpen.maxWait))), which reopens a breaker whose probe is silent"
            )
        }
        if policy.open.backoffMax < policy.open.duration {
            throw node.error(
                "open.backoff.max (\(DurationText.format(policy.open.backoffMax))) is shorter than open.duration (\(DurationText.format(policy.open.duration)))"
            )
        }
    }

    /// `{ input_per_1k: 0.5, output_per_1k: 1.5 }` or `{ weight: 3 }`.
    private static func cost(_ node: ConfigNode) throws(ConfigError) -> CallCost {
        var cost = CallCost()
        for (key, value) in try node.mapping(allowed: ["input_per_1k", "output_per_1k", "weight"]) {
            let number = try value.double(0...1_000_000)
            switch key {
            case "input_per_1k": cost.inputPer1k = number
            case "output_per_1k": cost.outputPer1k = number
            default: cost.weight = number
            }
        }
        if cost.weight != nil, cost.inputPer1k != nil || cost.outputPer1k != nil {
            throw node.error("give either a weight or prices per 1k tokens, not both")
        }
        guard cost.weight != nil || cost.inputPer1k != nil || cost.outputPer1k != nil else {
            throw node.error("needs input_per_1k and output_per_1k, or a weight")
        }
        return cost
    }

    private static func queue(_ node: ConfigNode, current: QueuePolicy?) throws(ConfigError) -> QueuePolicy {
        var queue = current ?? QueuePolicy(max: 100, timeout: .seconds(2))
        for (key, value) in try node.mapping(allowed: ["max", "timeout"]) {
            if key == "max" {
                queue.max = try value.int(1...100_000)
            } else {
                queue.timeout = try value.duration()
                guard queue.timeout > .zero, queue.timeout <= .seconds(3_600) else {
                    throw value.error("a queue timeout is more than 0 and at most 1h")
                }
            }
        }
        return queue
    }

    /// `{ requests: 500, per: 1m }` (or `budget:` for tokens).
    private static func rateLimit(
        _ node: ConfigNode, amountKey: String, current: RateLimit?, scope kind: FleetScopedBudgets, scoped: inout FleetScopedBudgets
    ) throws(ConfigError) -> RateLimit {
        var limit = current ?? RateLimit(amount: 0, per: .seconds(60))
        for (key, value) in try node.mapping(allowed: [amountKey, "per", "scope"]) {
            if key == "scope" {
                try scope(value, kind, &scoped)
            } else if key == "per" {
                limit.period = try value.duration()
                guard limit.period >= .milliseconds(1), limit.period <= .seconds(86_400) else {
                    throw value.error("per is from 1ms to 24h")
                }
            } else {
                limit.amount = try value.int(1...1_000_000_000)
            }
        }
        guard limit.amount > 0 else { throw node.error("needs \(amountKey): how many per period") }
        return limit
    }

    /// `scope: host` (the default) or `scope: fleet`.
    private static func scope(_ node: ConfigNode, _ kind: FleetScopedBudgets, _ scoped: inout FleetScopedBudgets) throws(ConfigError) {
        switch try node.string() {
        case "host": scoped.remove(kind)
        case "fleet": scoped.insert(kind)
        case let other: throw node.error("scope must be host or fleet, got \"\(other.prefix(40))\"")
        }
    }

    private static func applyTrip(_ node: ConfigNode, to trip: inout TripPolicy) throws(ConfigError) {
        let keys = ["consecutive_failures", "failure_rate", "window", "minimum_calls", "slow_call"]
        for (key, value) in try node.mapping(allowed: keys) {
            switch key {
            case "consecutive_failures":
                trip.consecutiveFailures = value.isOff ? nil : try value.int(1...1_000_000)
            case "failure_rate":
                trip.failureRate = value.isOff ? nil : try value.double(0...1, lowerOpen: true)
            case "window":
                trip.window = value.isOff ? nil : try window(value)
            case "minimum_calls":
                trip.minimumCalls = try value.int(1...1_000_000)
            default:
                trip.slowCall = value.isOff ? nil : try slowCall(value, current: trip.slowCall ?? SlowCallPolicy())
            }
        }
    }

    private static func window(_ node: ConfigNode) throws(ConfigError) -> WindowPolicy {
        let entries = try node.mapping(allowed: ["kind", "size", "seconds", "buckets"])
        let values = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        let kind = try values["kind"]?.string() ?? "count"
        switch kind {
        case "count":
            if let extra = values["seconds"] ?? values["buckets"] {
                throw extra.error("belongs to a time window; a count window takes only size")
            }
            return .count(size: try values["size"]?.int(1...100_000) ?? 100)
        case "time":
            if let extra = values["size"] { throw extra.error("belongs to a count window; a time window takes seconds and buckets") }
            let seconds = try values["seconds"]?.int(1...86_400) ?? 60
            let buckets = try values["buckets"]?.int(1...1_000) ?? min(10, seconds)
            guard buckets <= seconds * 1_000 else {
                throw values["buckets"]!.error("at most one bucket per millisecond of the window")
            }
            return .time(seconds: seconds, buckets: buckets)
        default:
            throw values["kind"]!.error("must be count or time, got \"\(kind)\"")
        }
    }

    private static func slowCall(_ node: ConfigNode, current: SlowCallPolicy) throws(ConfigError) -> SlowCallPolicy {
        var slow = current
        for (key, value) in try node.mapping(allowed: ["threshold_ms", "rate"]) {
            if key == "threshold_ms" {
                slow.threshold = .milliseconds(try value.int(1...86_400_000))
            } else {
                slow.rate = try value.double(0...1, lowerOpen: true)
            }
        }
        return slow
    }

    private static func applyOpen(_ node: ConfigNode, to open: inout OpenPolicy) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: ["duration", "backoff", "jitter", "honor_retry_after", "max_retry_after"]) {
            switch key {
            case "duration": open.duration = try value.duration()
            case "backoff":
                if value.isOff {
                    open.backoffMultiplier = 1
                    continue
                }
                for (backoffKey, backoffValue) in try value.mapping(allowed: ["multiplier", "max"]) {
                    if backoffKey == "multiplier" {
                        open.backoffMultiplier = try backoffValue.double(1...100)
                    } else {
                        open.backoffMax = try backoffValue.duration()
                    }
                }
            case "jitter": open.jitter = try value.double(0...1, upperOpen: true)
            case "max_retry_after": open.maxRetryAfter = value.isOff ? nil : try value.duration()
            default: open.honorRetryAfter = try value.bool()
            }
        }
    }

    private static func applyHalfOpen(_ node: ConfigNode, to halfOpen: inout HalfOpenPolicy) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: ["probes", "successes_to_close", "max_wait"]) {
            switch key {
            case "probes": halfOpen.probes = try value.int(1...10_000)
            case "successes_to_close": halfOpen.successesToClose = try value.int(1...10_000)
            default: halfOpen.maxWait = try value.duration()
            }
        }
    }

    private static func applyClassify(_ node: ConfigNode, to classify: inout ClassificationPolicy) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: ["failure", "ignore"]) {
            let rules = try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> StatusRule in try rule(item) }
            if key == "failure" { classify.failure = rules } else { classify.ignore = rules }
        }
    }

    /// `429`, `"5xx"`, `timeout` or `connection`.
    static func rule(_ node: ConfigNode) throws(ConfigError) -> StatusRule {
        let text = try node.string().lowercased()
        if text == "timeout" { return .timeout }
        if text == "connection" { return .connection }
        if text.count == 3, text.hasSuffix("xx"), let digit = Int(text.prefix(1)), (1...5).contains(digit) {
            return .statusClass(digit)
        }
        if let status = Int(text), (100...599).contains(status) { return .status(status) }
        throw node.error("expected an HTTP status (100-599), a class such as \"5xx\", timeout or connection; got \"\(text)\"")
    }
}
