import FuseboxCore
import Testing
@testable import FuseboxTelemetry

/// Each breaker's series live in a registry of its own; the scrape joins them
/// so that each metric family appears once, with all its samples together.
@Suite("Joined expositions")
struct ExpositionMergeTests {
    @Test func eachFamilyAppearsOnceWithEveryRegistrysSamples() {
        let a = Array("""
            # HELP calls Calls.
            # TYPE calls counter
            calls{breaker="a"} 1
            # TYPE state gauge
            state{breaker="a"} 0

            """.utf8)
        let b = Array("""
            # TYPE state gauge
            state{breaker="b"} 1
            # HELP calls Calls.
            # TYPE calls counter
            calls{breaker="b"} 2

            """.utf8)
        let joined = String(decoding: ExpositionMerge.merge([a, b]), as: UTF8.self)
        #expect(joined == """
            # HELP calls Calls.
            # TYPE calls counter
            calls{breaker="a"} 1
            calls{breaker="b"} 2
            # TYPE state gauge
            state{breaker="a"} 0
            state{breaker="b"} 1

            """)
    }

    @Test func aScrapeOfManyBreakersNamesEachFamilyOnce() {
        let metrics = FuseboxMetrics(
            version: "test", configuration: EngineConfiguration(breakers: (0..<50).map { BreakerDefinition(name: "b\($0)") })
        )
        let text = String(decoding: metrics.render([]), as: UTF8.self)
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(types).count == types.count, "a family declared twice")
        #expect(text.contains(#"fusebox_calls_total{breaker="b49",outcome="success"} 0"#))
    }
}
