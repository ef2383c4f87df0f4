/// Joins the Prometheus text expositions of several registries into one,
/// each metric family once: its `# HELP` and `# TYPE` lines, then every
/// registry's samples of it. Each breaker has a registry of its own because
/// swift-prometheus copies a family's whole label-set table to add one series,
/// so one shared registry made a start with N breakers cost N² (10,000
/// breakers had not started after 12 minutes); the exposition format wants
/// each family's lines together, which this restores.
enum ExpositionMerge {
    static func merge(_ parts: [[UInt8]]) -> [UInt8] {
        var order: [[UInt8]] = []
        var families: [[UInt8]: (header: [UInt8], samples: [UInt8])] = [:]
        for part in parts {
            var family: [UInt8] = []
            var help: ArraySlice<UInt8>?
            var start = part.startIndex
            while start < part.endIndex {
                let end = part[start...].firstIndex(of: UInt8(ascii: "\n")) ?? part.endIndex
                let line = part[start..<end]
                start = end + 1
                guard !line.isEmpty else { continue }
                if line.starts(with: Self.help) {
                    help = line
                } else if line.starts(with: Self.type) {
                    family = Array(name(after: Self.type, in: line))
                    if families[family] == nil {
                        order.append(family)
                        var header: [UInt8] = []
                        if let help { header += help + [UInt8(ascii: "\n")] }
                        header += line + [UInt8(ascii: "\n")]
                        families[family] = (header, [])
                    }
                    help = nil
                } else {
                    if families[family] == nil {
                        order.append(family)
                        families[family] = ([], [])
                    }
                    families[family]!.samples += line + [UInt8(ascii: "\n")]
                }
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for family in order {
            guard let entry = families[family] else { continue }
            out += entry.header
            out += entry.samples
        }
        return out
    }

    static let help = Array("# HELP ".utf8)
    static let type = Array("# TYPE ".utf8)

    /// The metric name after `prefix` (up to the next space).
    static func name(after prefix: [UInt8], in line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let rest = line.dropFirst(prefix.count)
        return rest[..<(rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex)]
    }
}
