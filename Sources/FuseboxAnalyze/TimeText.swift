import FuseboxCore

/// How reports write times: UTC, to the second in headings, to the
/// millisecond in event lists.
enum TimeText {
    /// `2026-01-01 00:02:31Z`.
    static func full(_ ms: Int64) -> String {
        let text = Timestamp.milliseconds(ms).rfc3339
        return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(8)) + "Z"
    }

    /// `00:02:31.600`.
    static func clock(_ ms: Int64) -> String {
        String(Timestamp.milliseconds(ms).rfc3339.dropFirst(11).prefix(12))
    }

    static func rfc(_ ms: Int64?) -> String? { ms.map { Timestamp.milliseconds($0).rfc3339 } }

    static func percent(_ value: Double) -> String {
        let hundredths = Int((value * 10_000).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)%"
    }
}

extension TrafficTotals {
    /// ` (12 by budget: 4 concurrency, 8 rate)`, or nothing when no budget refused.
    var budgetText: String {
        guard rejectedByBudget > 0 else { return "" }
        let parts = [(rejectedConcurrency, "concurrency"), (rejectedRate, "rate"), (rejectedTokens, "tokens")]
            .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
        return " (\(rejectedByBudget) by budget: \(parts.joined(separator: ", ")))"
    }
}

extension TrafficTotals {
    /// `12`, or `12 (8 budget)` when budgets refused some.
    var rejectedCell: String { rejectedByBudget > 0 ? "\(rejected) (\(rejectedByBudget) budget)" : String(rejected) }
}

extension Incident {
    /// `8m 20s`, or `ongoing`.
    var durationText: String { end.map { DurationFormat.text($0 - start) } ?? "ongoing" }

    var callsLine: String {
        "\(traffic.calls) calls, \(traffic.failed) failed, \(traffic.rejected) rejected\(traffic.budgetText), \(traffic.fallbacksOut) sent to a fallback"
    }

    var flags: [String] {
        var flags = flapping.keys.sorted().map { "flapping: \($0.label) tripped \(flapping[$0]!) times" }
        if correlated { flags.append("correlated: several providers down together, a hint the cause is on our side") }
        return flags
    }
}
