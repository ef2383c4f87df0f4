import FuseboxCore

/// Durations as the configuration writes them: a number and a unit, `250ms`,
/// `30s`, `1.5m`, `10m`, `1h`, `7d`.
public enum DurationText {
    static let units: [(suffix: String, nanoseconds: Double)] = [
        ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3_600e9), ("d", 86_400e9),
    ]

    /// The longest duration any policy key takes (a year); `retention` takes up to ten.
    public static let maximum: Duration = .seconds(365 * 86_400)
    public static let maximumRetention: Duration = .seconds(3_650 * 86_400)

    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingWhitespace
        // Longest suffix first, so "ms" is not read as "m" + "s".
        for (suffix, scale) in units.sorted(by: { $0.suffix.count > $1.suffix.count }) where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }),
                  let value = Double(number), value.isFinite, value >= 0
            else { return nil }
            // Past Int64 nanoseconds it saturates, so the maximum check can say what is allowed.
            return value * scale < 9e18 ? .nanoseconds(Int64((value * scale).rounded())) : .nanoseconds(Int64.max)
        }
        return nil
    }

    /// The shortest exact spelling: `10m` for 600 s, `1500ms` for 1.5 s.
    public static func format(_ duration: Duration) -> String {
        let ns = duration.nanosecondsClamped
        if ns == 0 { return "0s" }
        for (suffix, scale) in units.reversed() {
            let unit = Int64(scale)
            if ns % unit == 0 { return "\(ns / unit)\(suffix)" }
        }
        // Below a millisecond: fixed-point milliseconds (the reader takes no exponent).
        var fraction = String(ns % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(ns / 1_000_000).\(fraction)ms"
    }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let first = s.first, first.isWhitespace { s.removeFirst() }
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }
}
