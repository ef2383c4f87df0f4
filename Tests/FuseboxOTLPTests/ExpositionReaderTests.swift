import FuseboxJSON
import Testing
@testable import FuseboxCore
@testable import FuseboxOTLP

/// The exposition text read back into families, and those families in OTLP's JSON.
@Suite("OTLP export: the exposition read back and encoded")
struct ExpositionReaderTests {
    static let text = Array("""
    # HELP fusebox_transitions_total State transitions.
    # TYPE fusebox_transitions_total counter
    fusebox_transitions_total{breaker="a\\"b",to="open"} 2
    # TYPE fusebox_breaker_state gauge
    fusebox_breaker_state{breaker="a",state="open"} 1
    # TYPE fusebox_call_duration_seconds histogram
    fusebox_call_duration_seconds_bucket{breaker="a",le="0.1"} 1
    fusebox_call_duration_seconds_bucket{breaker="a",le="1.0"} 3
    fusebox_call_duration_seconds_bucket{breaker="a",le="+Inf"} 4
    fusebox_call_duration_seconds_sum{breaker="a"} 7.5
    fusebox_call_duration_seconds_count{breaker="a"} 4
    # TYPE fusebox_requests_total counter
    fusebox_requests_total{op="none",error="bad_request"} 1

    """.utf8)

    @Test func countersGaugesAndHistogramsAreReadWithTheirLabels() {
        let families = ExpositionReader.families(Self.text)
        #expect(families.map(\.name) == ["fusebox_transitions_total", "fusebox_breaker_state", "fusebox_call_duration_seconds", "fusebox_requests_total"])
        #expect(families[0].help == "State transitions.")
        #expect(families[0].samples[0].labels.map(\.1) == ["a\"b", "open"], "an escaped quote in a label value")
        let histogram = families[2].histograms[0]
        #expect(histogram.labels.map(\.0) == ["breaker"] && histogram.bounds == [0.1, 1, .infinity])
        #expect(histogram.cumulative == [1, 3, 4] && histogram.sum == 7.5 && histogram.count == 4)
    }

    @Test func theEncodingCountsEachBucketOnItsOwnAndNamesCountersWithoutTotal() throws {
        let encoder = OTLPEncoder(instance: "host-1", version: "9.9.9")
        let body = encoder.metrics(ExpositionReader.families(Self.text), start: Timestamp(nanoseconds: 1), now: Timestamp(nanoseconds: 2))
        let json = try JSONParser.parse(String(decoding: body, as: UTF8.self))
        let resource = items(json["resourceMetrics"]).first ?? .null
        let scope = items(resource["scopeMetrics"]).first ?? .null
        let metrics = items(scope["metrics"])
        try #require(metrics.count == 4)
        #expect(metrics.compactMap { text($0["name"]) } == ["fusebox_transitions", "fusebox_breaker_state", "fusebox_call_duration_seconds", "fusebox_requests"])
        let point = items(metrics[2]["histogram"]?["dataPoints"]).first ?? .null
        #expect(point["bucketCounts"] == .array([.string("1"), .string("2"), .string("1")]))
        #expect(point["explicitBounds"] == .array([.number("0.1"), .number("1")]))
        #expect(metrics[2]["unit"] == .string("s"))
        let keys = items(items(metrics[3]["sum"]?["dataPoints"])[0]["attributes"]).compactMap { text($0["key"]) }
        #expect(keys == ["op", "error.type"], "a label with a semantic-convention name takes it")
    }

    func items(_ value: JSONValue?) -> [JSONValue] {
        guard case .array(let items) = value else { return [] }
        return items
    }

    func text(_ value: JSONValue?) -> String? {
        guard case .string(let text) = value else { return nil }
        return text
    }
}
