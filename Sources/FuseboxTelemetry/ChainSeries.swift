import Prometheus
import FuseboxCore
import Synchronization

/// The series of one chain, all made up front: routes, routes that found no
/// breaker (by why), and a fallback series from the first member to each other.
final class ChainSeries: Sendable {
    let name: String
    let routes: Counter
    let exhausted: [ExhaustedReason: Counter]
    let switches: Counter
    private let fallbacks = Mutex<[String: Counter]>([:])

    init(name: String, members: [String], registry: PrometheusCollectorRegistry) {
        self.name = name
        routes = registry.counter("fusebox_routes_total", labels: [("chain", name)], help: "Routes asked along the chain.")
        exhausted = Dictionary(uniqueKeysWithValues: ExhaustedReason.allCases.map { reason in
            (reason, registry.counter(
                "fusebox_route_exhausted_total", labels: [("chain", name), ("reason", reason.rawValue)],
                help: "Routes no breaker of the chain could serve, by why: open (every breaker tried was open), budget (a budget refused), excluded (the client excluded every breaker), capability (none had what the route requires)."
            ))
        })
        switches = registry.counter(
            "fusebox_route_switches_total", labels: [("chain", name)],
            help: "Times a fastest chain moved its traffic to another member (at most once per window)."
        )
        prepare(members: members, registry: registry)
    }

    /// Makes the fallback series the chain's order implies (at start, and when a reload reorders it).
    func prepare(members: [String], registry: PrometheusCollectorRegistry) {
        guard let first = members.first else { return }
        for member in members.dropFirst() { _ = fallbackCounter(from: first, to: member, registry: registry) }
    }

    func fallback(from: String, to: String, registry: PrometheusCollectorRegistry) {
        fallbackCounter(from: from, to: to, registry: registry).increment()
    }

    private func fallbackCounter(from: String, to: String, registry: PrometheusCollectorRegistry) -> Counter {
        let key = "\(from)>\(to)"
        return fallbacks.withLock { made in
            if let counter = made[key] { return counter }
            let counter = registry.counter(
                "fusebox_fallbacks_total", labels: [("chain", name), ("from", from), ("to", to)],
                help: "Routes served by a later breaker of the chain than its first."
            )
            made[key] = counter
            return counter
        }
    }

    func unregister(from registry: PrometheusCollectorRegistry) {
        registry.unregisterCounter(routes)
        registry.unregisterCounter(switches)
        for counter in exhausted.values { registry.unregisterCounter(counter) }
        fallbacks.withLock { made in for counter in made.values { registry.unregisterCounter(counter) } }
    }
}
