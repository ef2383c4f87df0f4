import FuseboxCore
import FuseboxJSON

/// Writes protocol v1 responses, one JSON object per line, `id` first.
public enum ResponseEncoder {
    static func start(_ id: RequestID?, ok: Bool) -> JSONWriter {
        var writer = JSONWriter()
        switch id {
        case .string(let text)?: writer.string("id", text)
        case .number(let text)?: writer.raw("id", text.utf8)
        case nil: break
        }
        writer.bool("ok", ok)
        return writer
    }

    public static func error(_ error: WireError) -> [UInt8] {
        var writer = start(error.id, ok: false)
        writer.object("error") { inner in
            inner.string("code", error.code.rawValue)
            inner.string("message", error.message)
        }
        return writer.finish()
    }

    /// `{"ok":true}` with the id: ping and subscribe.
    public static func ok(_ id: RequestID?) -> [UInt8] {
        var writer = start(id, ok: true)
        return writer.finish()
    }

    public static func hello(
        _ id: RequestID?, server: String, breakers: [String], chains: [(name: String, members: [String], strategy: String)],
        stateFile: (bootID: UInt64, pid: Int32)? = nil
    ) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.string("server", server)
        writer.int("protocol", WireLimits.protocolVersion)
        writer.stringArray("breakers", breakers)
        writer.object("chains") { inner in
            for chain in chains { inner.value(chain.name, .array(chain.members.map { .string($0) })) }
        }
        // Clients take the fast path for a route only along an ordered chain: they need to know which are.
        writer.object("strategies") { inner in
            for chain in chains { inner.value(chain.name, .string(chain.strategy)) }
        }
        // The fast path's file as this sidecar made it: a client trusts a state file only when its
        // header says the same (a file anyone else put at the path, or a predecessor's, says otherwise).
        if let stateFile {
            let boot = String(stateFile.bootID, radix: 16)
            writer.object("state_file") { inner in
                inner.value("boot_id", .string(String(repeating: "0", count: 16 - boot.count) + boot))
                inner.value("pid", .number(String(stateFile.pid)))
            }
        }
        return writer.finish()
    }

    /// A renewed permit's new deadline.
    public static func renewed(_ id: RequestID?, deadline: Timestamp) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.int("deadline_ms", deadline.milliseconds)
        return writer.finish()
    }

    public static func decision(_ id: RequestID?, _ decision: Decision) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.bool("allowed", decision.allowed)
        writer.string("state", decision.state.rawValue)
        if let permit = decision.permit {
            permit.id.withQuotedHex { writer.raw("permit", $0) }
            writer.bool("probe", permit.probe)
            writer.int("deadline_ms", permit.deadline.milliseconds)
            writer.int("ttl_ms", permit.ttl.millisecondsClamped)
        } else {
            writer.int("retry_in_ms", decision.retryIn.map(roundedUpMilliseconds))
            writer.string("reason", decision.reason?.rawValue)
        }
        if let waited = decision.waited { writer.int("waited_ms", waited.millisecondsClamped) }
        return writer.finish()
    }

    public static func route(_ id: RequestID?, _ route: RouteDecision) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.bool("allowed", route.allowed)
        writer.string("breaker", route.breaker)
        writer.string("permit", route.permit?.id.description)
        writer.bool("probe", route.permit?.probe ?? false)
        if let permit = route.permit {
            writer.int("deadline_ms", permit.deadline.milliseconds)
            writer.int("ttl_ms", permit.ttl.millisecondsClamped)
        }
        writer.objects("skipped", route.skipped) { inner, skipped in
            inner.string("breaker", skipped.breaker)
            inner.string("state", skipped.state.rawValue)
            inner.int("retry_in_ms", skipped.retryIn.map(roundedUpMilliseconds))
            inner.string("reason", skipped.reason.rawValue)
        }
        if let choice = route.choice {
            writer.string("strategy", choice.strategy)
            writer.string("why", choice.basis.rawValue)
            switch choice.basis {
            case .latency, .refresh: writer.double("latency_ms", choice.figure.map { ($0 * 10).rounded() / 10 })
            case .cost: writer.double("cost", choice.figure)
            case .weight: writer.double("weight", choice.figure)
            case .order: break
            }
        }
        return writer.finish()
    }

    /// report, record, force, reset: the breaker's state afterwards.
    public static func state(_ id: RequestID?, _ state: BreakerState) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.string("state", state.rawValue)
        return writer.finish()
    }

    public static func status(_ id: RequestID?, _ snapshots: [BreakerSnapshot]) -> [UInt8] {
        var writer = start(id, ok: true)
        writer.objects("breakers", snapshots) { inner, snapshot in writeSnapshot(&inner, snapshot) }
        return writer.finish()
    }

    public static func writeSnapshot(_ writer: inout JSONWriter, _ s: BreakerSnapshot) {
        writer.string("name", s.name)
        writer.string("state", s.state.rawValue)
        writer.int("generation", Int64(clamping: s.generation))
        writer.string("state_since", s.stateSince.rfc3339)
        writer.string("open_until", s.openUntil?.rfc3339)
        writer.int("consecutive_failures", s.consecutiveFailures)
        writer.int("calls_in_window", s.window.calls)
        writer.int("failures_in_window", s.window.failures)
        writer.double("failure_rate", s.window.failureRate)
        writer.double("slow_call_rate", s.window.slowCallRate)
        writer.int("failed_probes", s.failedProbes)
        writer.int("probes_in_flight", s.probesInFlight)
        writer.int("permits_in_flight", s.permitsInFlight)
        writer.string("last_error", s.lastError)
        writer.int("last_status", s.lastStatus)
        writer.int("queued", s.queued)
        if let rate = s.rateAvailable { writer.int("rate_tokens_available", Int(rate.rounded(.down))) }
        if let tokens = s.tokensAvailable { writer.int("token_budget_available", Int(tokens.rounded(.down))) }
    }

    /// Rounded up, so a client that waits exactly this long finds the breaker ready.
    static func roundedUpMilliseconds(_ duration: Duration) -> Int64 {
        let ns = max(0, duration.nanosecondsClamped)
        return (ns + 999_999) / 1_000_000
    }
}
