import FuseboxText
import FuseboxJSON
import FuseboxCore

/// The side-by-side table of strategies, as text, Markdown or JSON.
public enum SimulationReport {
    public enum Format: String, Sendable, CaseIterable { case table, markdown, json }

    public static func render(_ scenario: Scenario, _ results: [StrategyResult], format: Format) -> String {
        switch format {
        case .table, .markdown: return tableText(scenario, results, markdown: format == .markdown)
        case .json: return json(scenario, results)
        }
    }

    /// One line saying what was simulated.
    public static func describe(_ s: Scenario) -> String {
        let perMinute = s.rate * 60
        let rate = perMinute == perMinute.rounded() ? String(Int(perMinute)) : seconds3(perMinute)
        var text = "\(rate) requests/minute (\(s.arrivals.rawValue), seed \(s.seed)) for \(span(s.duration))"
        for provider in s.providers {
            if let limit = provider.rateLimit, s.chain.contains(provider.name) {
                text += "; \(provider.name): limited to \(limit) requests/minute (429 with Retry-After above)"
            }
            for fault in provider.faults {
                let share = fault.ratio < 1 ? " of \(Int((fault.ratio * 100).rounded()))% of calls" : ""
                text += "; \(provider.name): \(mode(fault.mode))\(share) from \(span(fault.start)) for \(span(fault.length))"
            }
        }
        return text + "; chain \(s.chain.joined(separator: " → ")), client timeout \(span(s.clientTimeout))"
    }

    static func mode(_ mode: FaultWindow.Mode) -> String {
        switch mode {
        case .timeout: return "calls hang until the client timeout"
        case .error(let status, let retryAfter): return "fast \(status)s" + (retryAfter.map { " with Retry-After \(span($0))" } ?? "")
        case .slow(let latency): return "calls take \(span(latency))"
        }
    }

    static func rows(_ s: Scenario, _ r: StrategyResult) -> [String] {
        var cells = [
            String(r.requests),
            "\(r.userErrors) (\(percent(r.userErrors, r.requests)))",
            r.strategy.usesBreaker
                ? "\(r.callsToFailing) (\(r.callsToFailing - r.callsToFailingAfterTrip) before it opened, \(r.probesToFailing) probes)"
                : String(r.callsToFailing),
            String(r.calls),
            seconds(r.meanResponse),
            seconds(r.p99Response),
            String(r.peakInFlight),
        ]
        for name in s.chain { cells.append(String(r.servedBy[name] ?? 0)) }
        cells.append(r.recoveryLag.map(seconds) ?? "-")
        cells.append(r.strategy.usesBreaker ? String(r.transitions) : "-")
        if s.hasRateLimits { cells.append(String(r.rateLimited)) }
        return cells
    }

    static func labels(_ s: Scenario) -> [String] {
        ["requests", "user-visible errors", "calls to the failing provider", "provider calls in all",
         "mean response time", "p99 response time", "peak concurrent calls"]
            + s.chain.enumerated().map { "served by \($1)\($0 == 0 ? " (primary)" : "")" }
            + ["recovery to primary traffic", "breaker transitions"]
            + (s.hasRateLimits ? ["429s from rate limits"] : [])
    }

    static func tableText(_ s: Scenario, _ results: [StrategyResult], markdown: Bool) -> String {
        let header = [""] + results.map(\.strategy.title)
        let body = labels(s).enumerated().map { i, label in [label] + results.map { rows(s, $0)[i] } }
        if markdown {
            var lines = ["**Scenario:** \(describe(s))", "", "| " + header.joined(separator: " | ") + " |",
                         "|---" + String(repeating: "|---:", count: results.count) + "|"]
            lines += body.map { "| " + $0.joined(separator: " | ") + " |" }
            return lines.joined(separator: "\n") + "\n"
        }
        let table = TextTable.figures([header] + body, separator: "   ").render()
        return "Scenario: \(describe(s))\n\n" + table + "\n"
    }

    /// One object per strategy, each on its own line, written by the package's one JSON writer.
    static func json(_ s: Scenario, _ results: [StrategyResult]) -> String {
        var lines: [String] = []
        for r in results {
            var w = JSONWriter(capacity: 512)
            w.string("strategy", r.strategy.rawValue)
            w.int("requests", r.requests)
            w.int("user_errors", r.userErrors)
            w.int("calls_to_failing_provider", r.callsToFailing)
            w.int("calls_to_failing_provider_after_trip", r.callsToFailingAfterTrip)
            w.int("probes_to_failing_provider", r.probesToFailing)
            w.int("provider_calls", r.calls)
            w.int("mean_response_ms", ms(r.meanResponse))
            w.int("p99_response_ms", ms(r.p99Response))
            w.int("peak_in_flight", r.peakInFlight)
            w.object("served_by") { inner in
                for name in s.chain { inner.value(name, .number(String(r.servedBy[name] ?? 0))) }
            }
            w.int("recovery_to_primary_ms", r.recoveryLag.map(ms))
            w.int("transitions", r.transitions)
            w.int("rate_limited", r.rateLimited)
            lines.append("    " + String(decoding: w.finish().dropLast(), as: UTF8.self))
        }
        var head = JSONWriter()
        head.string("scenario", describe(s))
        head.raw("seed", Array(String(s.seed).utf8))
        // The head object, reopened to take the strategies one per line for readability.
        let opening = String(decoding: head.finish().dropLast(2), as: UTF8.self)
        return opening + ",\"strategies\":[\n" + lines.joined(separator: ",\n") + "\n]}\n"
    }

    static func ms(_ d: Duration) -> Int64 { d.nanosecondsClamped / 1_000_000 }

    /// `31.24 s`.
    static func seconds(_ d: Duration) -> String { seconds3(Double(d.nanosecondsClamped) / 1e9, decimals: 2) + " s" }

    static func seconds3(_ value: Double, decimals: Int = 2) -> String {
        let scale = decimals == 2 ? 100.0 : 1000.0
        let scaled = Int64((value * scale).rounded())
        let whole = scaled / Int64(scale)
        var fraction = String(abs(scaled % Int64(scale)))
        while fraction.count < decimals { fraction = "0" + fraction }
        return "\(whole).\(fraction)"
    }

    /// `5m`, `90s`, `1h30m`.
    static func span(_ d: Duration) -> String {
        let ms = d.nanosecondsClamped / 1_000_000
        if ms % 1_000 != 0 { return "\(ms)ms" }
        let s = ms / 1_000
        if s % 3_600 == 0, s > 0 { return "\(s / 3_600)h" }
        if s % 60 == 0, s > 0 { return "\(s / 60)m" }
        return "\(s)s"
    }

    static func percent(_ part: Int, _ whole: Int) -> String {
        guard whole > 0 else { return "0%" }
        return seconds3(Double(part) * 100 / Double(whole), decimals: 2).replacingTrailingZeros + "%"
    }
}

extension String {
    var replacingTrailingZeros: String {
        guard contains(".") else { return self }
        var text = self
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
