/// The Prometheus text exposition the sidecar serves on `/metrics`, read
/// back into families, so OTLP exports exactly the series a scrape sees.
/// It reads the sidecar's own output (swift-prometheus and `ProcessMetrics`),
/// not arbitrary input: a line it does not understand is skipped.
struct ExpositionReader {
    enum Kind: String { case counter, gauge, histogram }

    struct Sample: Equatable {
        var labels: [(String, String)]
        var value: Double

        static func == (a: Sample, b: Sample) -> Bool {
            a.value == b.value && a.labels.elementsEqual(b.labels) { $0 == $1 }
        }
    }

    /// One histogram series: cumulative counts per upper bound (`+Inf` last), sum and count.
    struct Histogram: Equatable {
        var labels: [(String, String)]
        var bounds: [Double] = []
        var cumulative: [Double] = []
        var sum = 0.0
        var count = 0.0

        static func == (a: Histogram, b: Histogram) -> Bool {
            a.labels.elementsEqual(b.labels) { $0 == $1 } && a.bounds == b.bounds && a.cumulative == b.cumulative
                && a.sum == b.sum && a.count == b.count
        }
    }

    struct Family: Equatable {
        var name: String
        var kind: Kind
        var help = ""
        var samples: [Sample] = []
        var histograms: [Histogram] = []
        /// A histogram series' place in `histograms`, by its labels (a linear search made 1,000 breakers quadratic).
        var seriesIndex: [String: Int] = [:]
    }

    static func families(_ text: [UInt8]) -> [Family] {
        var families: [Family] = []
        var help: [String: String] = [:]
        for rawLine in text.split(separator: UInt8(ascii: "\n")) {
            let line = String(decoding: rawLine, as: UTF8.self)
            if line.hasPrefix("# HELP ") {
                let rest = line.dropFirst(7)
                guard let space = rest.firstIndex(of: " ") else { continue }
                help[String(rest[..<space])] = unescapeHelp(rest[rest.index(after: space)...])
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2, let kind = Kind(rawValue: String(parts[1])) else { continue }
                let name = String(parts[0])
                families.append(Family(name: name, kind: kind, help: help[name] ?? ""))
                continue
            }
            guard !line.hasPrefix("#"), !families.isEmpty, let (name, labels, value) = sample(line) else { continue }
            add(name, labels, value, to: &families[families.count - 1])
        }
        return families
    }

    private static func add(_ name: String, _ labels: [(String, String)], _ value: Double, to family: inout Family) {
        guard family.kind == .histogram else {
            if name == family.name { family.samples.append(Sample(labels: labels, value: value)) }
            return
        }
        let series = labels.filter { $0.0 != "le" }
        let key = series.map { $0.0 + "\u{0}" + $0.1 }.joined(separator: "\u{1}")
        var index = family.seriesIndex[key]
        if index == nil {
            family.histograms.append(Histogram(labels: series))
            index = family.histograms.count - 1
            family.seriesIndex[key] = index
        }
        switch name {
        case family.name + "_bucket":
            guard let bound = labels.first(where: { $0.0 == "le" }).flatMap({ Double($0.1 == "+Inf" ? "inf" : $0.1) }) else { return }
            family.histograms[index!].bounds.append(bound)
            family.histograms[index!].cumulative.append(value)
        case family.name + "_sum": family.histograms[index!].sum = value
        case family.name + "_count": family.histograms[index!].count = value
        default: break
        }
    }

    /// `name{a="x",b="y"} 1.5` (labels optional; a trailing timestamp ignored).
    static func sample(_ line: String) -> (String, [(String, String)], Double)? {
        var labels: [(String, String)] = []
        let bytes = Array(line.utf8)
        var i = 0
        while i < bytes.count, bytes[i] != UInt8(ascii: "{"), bytes[i] != UInt8(ascii: " ") { i += 1 }
        let name = String(decoding: bytes[0..<i], as: UTF8.self)
        guard !name.isEmpty, i < bytes.count else { return nil }
        if bytes[i] == UInt8(ascii: "{") {
            i += 1
            while i < bytes.count, bytes[i] != UInt8(ascii: "}") {
                let keyStart = i
                while i < bytes.count, bytes[i] != UInt8(ascii: "=") { i += 1 }
                let key = String(decoding: bytes[keyStart..<i], as: UTF8.self)
                i += 1
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
                i += 1
                var value: [UInt8] = []
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                    if bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count {
                        i += 1
                        value.append(bytes[i] == UInt8(ascii: "n") ? 10 : bytes[i])
                    } else {
                        value.append(bytes[i])
                    }
                    i += 1
                }
                guard i < bytes.count else { return nil }
                i += 1
                labels.append((key, String(decoding: value, as: UTF8.self)))
                if i < bytes.count, bytes[i] == UInt8(ascii: ",") { i += 1 }
            }
            guard i < bytes.count else { return nil }
            i += 1
        }
        let rest = String(decoding: bytes[i...], as: UTF8.self).split(separator: " ")
        guard let text = rest.first, let value = number(text) else { return nil }
        return (name, labels, value)
    }

    private static func number(_ text: Substring) -> Double? {
        switch text {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    /// HELP text escapes only a backslash (`\\`) and a line break (`\n`).
    private static func unescapeHelp(_ text: Substring) -> String {
        var out = "", escaped = false
        for character in text {
            if escaped {
                out.append(character == "n" ? "\n" : character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        return out
    }
}
