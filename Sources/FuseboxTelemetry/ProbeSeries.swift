import FuseboxCore
import Prometheus

/// The series of one breaker's active probe, made when its `probe:` section
/// appears (at start or reload) and dropped when it goes.
final class ProbeSeries: Sendable {
    /// Its own registry, as a breaker's (`ExpositionMerge`).
    let registry = PrometheusCollectorRegistry()
    let results: [ProbeOutcome: Counter]
    let duration: DurationHistogram

    static let buckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30),
    ]

    init(breaker: String) {
        let registry = self.registry
        let label = [("breaker", breaker)]
        results = Dictionary(uniqueKeysWithValues: ProbeOutcome.allCases.map { outcome in
            (outcome, registry.counter(
                "fusebox_probes_total", labels: label + [("outcome", outcome.rawValue)],
                help: "The sidecar's own health probes, by breaker and outcome (success, failure, timeout)."
            ))
        })
        duration = registry.durationHistogram(
            "fusebox_probe_duration_seconds", labels: label, buckets: Self.buckets,
            help: "How long the sidecar's health probes took, until the answer or the probe's timeout."
        )
    }

    func record(_ result: ProbeResult) {
        results[result.outcome]?.increment()
        duration.record(result.latency)
    }
}
