import FuseboxCore

/// Reads a chain written as a mapping:
/// `{ breakers: [a, b], strategy: fastest, margin: 0.2, window: 10s }`,
/// `{ breakers: [a, b], strategy: weighted, weights: { a: 95, b: 5 } }`.
enum ChainReader {
    static let strategies = ["ordered", "fastest", "cheapest", "weighted"]

    static func chain(
        _ name: String, _ node: ConfigNode, members read: (ConfigNode) throws(ConfigError) -> [String]
    ) throws(ConfigError) -> ChainDefinition {
        let entries = try node.mapping(allowed: ["breakers", "strategy", "margin", "window", "weights"])
        let byKey = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let list = byKey["breakers"] else { throw node.error("needs breakers: the chain's members, in order") }
        let members = try read(list)
        let strategyName = try byKey["strategy"]?.string() ?? "ordered"
        func refuseUnless(_ key: String, for wanted: String) throws(ConfigError) {
            if let extra = byKey[key], strategyName != wanted { throw extra.error("belongs to strategy \(wanted); this chain's strategy is \(strategyName)") }
        }
        try refuseUnless("margin", for: "fastest")
        try refuseUnless("window", for: "fastest")
        try refuseUnless("weights", for: "weighted")
        let strategy: RouteStrategy
        switch strategyName {
        case "ordered": strategy = .ordered
        case "cheapest": strategy = .cheapest
        case "fastest":
            var policy = FastestPolicy()
            if let margin = byKey["margin"] { policy.margin = try margin.double(0...0.9) }
            if let window = byKey["window"] {
                policy.window = try window.duration(maximum: .seconds(3_600))
                guard policy.window >= .milliseconds(100) else { throw window.error("a window is at least 100ms") }
            }
            strategy = .fastest(policy)
        case "weighted":
            guard let table = byKey["weights"] else { throw node.error("strategy weighted needs weights: { breaker: share, … }") }
            var weights: [String: Int] = [:]
            for (breaker, value) in try table.mapping() {
                guard members.contains(breaker) else {
                    throw value.error("\"\(breaker)\" is not a member of chain \(name) (\(members.joined(separator: ", ")))")
                }
                weights[breaker] = try value.int(0...1_000_000)
            }
            guard weights.values.reduce(0, +) > 0 else { throw table.error("the weights add up to 0: no member would ever be picked") }
            strategy = .weighted(weights)
        default:
            throw byKey["strategy"]!.error("must be one of \(strategies.joined(separator: ", ")), got \"\(strategyName.prefix(40))\"")
        }
        return ChainDefinition(name: name, breakers: members, strategy: strategy)
    }
}
