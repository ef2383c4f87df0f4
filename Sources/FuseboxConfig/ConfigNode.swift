import Yams

/// A YAML node with where it came from, so every complaint can name the file,
/// line, column and key path. The typed readers accept only what the format
/// allows and say what that is when they refuse.
package struct ConfigNode {
    package let node: Node
    package let path: String
    package let file: String

    package init(node: Node, path: String, file: String) {
        self.node = node
        self.path = path
        self.file = file
    }

    package func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: node.mark?.line, column: node.mark?.column, key: path, message: message)
    }

    /// The raw text of a scalar, as written (quotes removed).
    private var scalarText: String? { node.scalar?.string }
    private var isPlain: Bool { node.scalar?.style == .plain || node.scalar?.style == .any }

    /// `~`, `null` or an empty value.
    package var isNull: Bool {
        guard let text = scalarText, isPlain else { return false }
        return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// `off`, `false`, `no` (YAML 1.1 readers turn a bare `off` into false).
    package var isOff: Bool {
        guard let text = scalarText?.lowercased(), isPlain else { return false }
        return text == "off" || text == "false" || text == "no"
    }

    package var isMapping: Bool { node.mapping != nil }

    private var kindName: String {
        switch node {
        case .scalar: return isNull ? "nothing" : "\"\(scalarText ?? "")\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The entries of a mapping, refusing keys not in `allowed` and keys given twice.
    package func mapping(allowed: [String]? = nil) throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        if isNull { return [] }
        guard let mapping = node.mapping else { throw error("expected a mapping of keys, got \(kindName)") }
        var seen = Set<String>()
        var entries: [(key: String, value: ConfigNode)] = []
        for (keyNode, valueNode) in mapping {
            let keyPath = path.isEmpty ? "" : "\(path)."
            guard let key = keyNode.scalar?.string else {
                throw ConfigNode(node: keyNode, path: path, file: file).error("keys must be plain names")
            }
            let located = ConfigNode(node: keyNode, path: keyPath + key, file: file)
            if let allowed, !allowed.contains(key) {
                throw located.error("unknown key; allowed here: \(allowed.joined(separator: ", "))")
            }
            guard seen.insert(key).inserted else { throw located.error("given twice") }
            entries.append((key, ConfigNode(node: valueNode, path: keyPath + key, file: file)))
        }
        return entries
    }

    package func sequence() throws(ConfigError) -> [ConfigNode] {
        guard let sequence = node.sequence else { throw error("expected a list, got \(kindName)") }
        return sequence.enumerated().map { ConfigNode(node: $1, path: "\(path)[\($0)]", file: file) }
    }

    package func string() throws(ConfigError) -> String {
        guard let text = scalarText, !isNull else { throw error("expected a text value, got \(kindName)") }
        return text
    }

    package func int(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let text = scalarText, let value = Int(text.replacingUnderscores) else {
            throw error("expected a whole number from \(range.lowerBound) to \(range.upperBound), got \(kindName)")
        }
        guard range.contains(value) else {
            throw error("must be from \(range.lowerBound) to \(range.upperBound), got \(value)")
        }
        return value
    }

    /// A number in `range`; `lowerOpen` excludes the lower bound.
    package func double(_ range: ClosedRange<Double>, lowerOpen: Bool = false, upperOpen: Bool = false) throws(ConfigError) -> Double {
        let bounds = "\(lowerOpen ? "above" : "from") \(range.lowerBound.formatted) \(upperOpen ? "and below" : "to") \(range.upperBound.formatted)"
        guard let text = scalarText, let value = Double(text), value.isFinite else {
            throw error("expected a number \(bounds), got \(kindName)")
        }
        let aboveLower = lowerOpen ? value > range.lowerBound : value >= range.lowerBound
        let belowUpper = upperOpen ? value < range.upperBound : value <= range.upperBound
        guard aboveLower && belowUpper else { throw error("must be a number \(bounds), got \(text)") }
        return value
    }

    package func bool() throws(ConfigError) -> Bool {
        switch scalarText?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error("expected true or false, got \(kindName)")
        }
    }

    /// A positive duration with a unit: `250ms`, `30s`, `10m`, `1h`.
    /// A duration from above zero (or zero, when allowed) to `maximum`:
    /// bounded so that no deadline computed from it can overflow or mean "never".
    package func duration(allowZero: Bool = false, maximum: Duration = DurationText.maximum) throws(ConfigError) -> Duration {
        guard let text = scalarText, let value = DurationText.parse(text) else {
            throw error("expected a duration with a unit such as 250ms, 30s, 10m or 1h, got \(kindName)")
        }
        guard allowZero || value > .zero else { throw error("must be longer than zero, got \(text)") }
        guard value <= maximum else {
            throw error("must be at most \(DurationText.format(maximum)), got \(text)")
        }
        return value
    }
}

extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}

extension Double {
    /// `1` rather than `1.0`, for messages and rendered YAML.
    var formatted: String {
        self == rounded() && abs(self) < 1e15 ? String(Int64(self)) : String(self)
    }
}
