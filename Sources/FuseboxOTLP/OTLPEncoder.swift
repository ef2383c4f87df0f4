import FuseboxCore
import FuseboxJSON
import FuseboxTelemetry

/// Metrics and transition logs in OTLP/HTTP's JSON encoding (the protobuf
/// JSON mapping: lowerCamelCase keys, 64-bit integers as strings, enums as
/// numbers), which every OpenTelemetry collector's `otlphttp` receiver takes.
struct OTLPEncoder: Sendable {
    /// `service.name`, `service.version`, `service.instance.id`: who sent it.
    let resource: [(String, String)]
    let version: String

    /// Prometheus labels that have an OpenTelemetry semantic-convention name.
    /// The others (`breaker`, `state`, `reason`, …) have none and keep theirs.
    static let conventionNames = ["error": "error.type"]

    init(instance: String, version: String) {
        resource = [("service.name", "fusebox"), ("service.version", version), ("service.instance.id", instance)]
        self.version = version
    }

    // MARK: Metrics

    /// One `ExportMetricsServiceRequest`: counters as cumulative monotonic
    /// sums (named without Prometheus's `_total`), gauges as gauges,
    /// histograms with their explicit bounds. `start` is when the counters began.
    func metrics(_ families: [ExpositionReader.Family], start: Timestamp, now: Timestamp) -> [UInt8] {
        var out = JSONWriter(capacity: 64 * 1024)
        out.objects("resourceMetrics", [()]) { resourceMetrics, _ in
            resourceMetrics.object("resource") { self.attributes(&$0, self.resource) }
            resourceMetrics.objects("scopeMetrics", [()]) { scope, _ in
                scope.object("scope") { self.scope(&$0) }
                scope.objects("metrics", families.filter { !$0.samples.isEmpty || !$0.histograms.isEmpty }) { metric, family in
                    self.metric(&metric, family, start: start, now: now)
                }
            }
        }
        return out.finish()
    }

    private func metric(_ out: inout JSONWriter, _ family: ExpositionReader.Family, start: Timestamp, now: Timestamp) {
        let (name, unit) = Self.nameAndUnit(family)
        out.string("name", name)
        out.string("description", family.help)
        out.string("unit", unit)
        switch family.kind {
        case .counter:
            out.object("sum") { sum in
                sum.objects("dataPoints", family.samples.filter(\.value.isFinite)) { self.point(&$0, $1, start: start, now: now) }
                sum.int("aggregationTemporality", 2)  // cumulative
                sum.bool("isMonotonic", true)
            }
        case .gauge:
            out.object("gauge") { gauge in
                gauge.objects("dataPoints", family.samples.filter(\.value.isFinite)) { self.point(&$0, $1, start: nil, now: now) }
            }
        case .histogram:
            out.object("histogram") { histogram in
                histogram.objects("dataPoints", family.histograms) { self.histogramPoint(&$0, $1, start: start, now: now) }
                histogram.int("aggregationTemporality", 2)
            }
        }
    }

    private func point(_ out: inout JSONWriter, _ sample: ExpositionReader.Sample, start: Timestamp?, now: Timestamp) {
        attributes(&out, Self.renamed(sample.labels))
        if let start { out.string("startTimeUnixNano", String(start.nanoseconds)) }
        out.string("timeUnixNano", String(now.nanoseconds))
        out.raw("asDouble", Self.number(sample.value).utf8)
    }

    /// OTLP counts each bucket on its own (Prometheus counts up to each bound); the `+Inf` bound is implied.
    private func histogramPoint(_ out: inout JSONWriter, _ histogram: ExpositionReader.Histogram, start: Timestamp, now: Timestamp) {
        attributes(&out, Self.renamed(histogram.labels))
        out.string("startTimeUnixNano", String(start.nanoseconds))
        out.string("timeUnixNano", String(now.nanoseconds))
        out.string("count", String(Self.count(histogram.count)))
        if histogram.sum.isFinite { out.raw("sum", Self.number(histogram.sum).utf8) }
        var counts: [String] = []
        var below = 0.0
        for cumulative in histogram.cumulative {
            counts.append(String(Self.count(cumulative - below)))
            below = cumulative
        }
        out.stringArray("bucketCounts", counts)
        let bounds = histogram.bounds.filter(\.isFinite).map(Self.number)
        out.raw("explicitBounds", Array(("[" + bounds.joined(separator: ",") + "]").utf8))
    }

    // MARK: Logs

    /// One `ExportLogsServiceRequest`: a log record per transition, with the
    /// log line's fields as attributes and `event.name` the log line's event.
    func logs(_ transitions: [Transition], now: Timestamp) -> [UInt8] {
        var out = JSONWriter(capacity: 1_024 * max(1, transitions.count))
        out.objects("resourceLogs", [()]) { resourceLogs, _ in
            resourceLogs.object("resource") { self.attributes(&$0, self.resource) }
            resourceLogs.objects("scopeLogs", [()]) { scope, _ in
                scope.object("scope") { self.scope(&$0) }
                scope.objects("logRecords", transitions) { record, transition in
                    self.logRecord(&record, transition, now: now)
                }
            }
        }
        return out.finish()
    }

    private func logRecord(_ out: inout JSONWriter, _ t: Transition, now: Timestamp) {
        out.string("timeUnixNano", String(t.at.nanoseconds))
        out.string("observedTimeUnixNano", String(now.nanoseconds))
        // The log line's levels: an opening is a warning, everything else information.
        let warning = t.to == .open || t.to == .forcedOpen
        out.int("severityNumber", warning ? 13 : 9)
        out.string("severityText", warning ? "WARN" : "INFO")
        out.object("body") { $0.string("stringValue", TransitionLog.message(t)) }
        let fields = [("event.name", TransitionFieldValue.text(TransitionLog.event))] + TransitionField.allCases.map { ($0.rawValue, t.value($0)) }
        out.objects("attributes", fields) { attribute, pair in
            attribute.string("key", pair.0)
            attribute.object("value") { value in
                switch pair.1 {
                case .text(let text): value.string("stringValue", text ?? "")
                case .integer(let number): if let number { value.string("intValue", String(number)) } else { value.string("stringValue", "") }
                case .real(let number): value.raw("doubleValue", Self.number(number).utf8)
                }
            }
        }
    }

    // MARK: Parts

    private func scope(_ out: inout JSONWriter) {
        out.string("name", "fusebox")
        out.string("version", version)
    }

    private func attributes(_ out: inout JSONWriter, _ pairs: [(String, String)]) {
        out.objects("attributes", pairs) { attribute, pair in
            attribute.string("key", pair.0)
            attribute.object("value") { $0.string("stringValue", pair.1) }
        }
    }

    static func renamed(_ labels: [(String, String)]) -> [(String, String)] {
        labels.map { (conventionNames[$0.0] ?? $0.0, $0.1) }
    }

    /// The OTLP name and UCUM unit of a family: `_total` dropped from a counter, a unit from the name's suffix.
    static func nameAndUnit(_ family: ExpositionReader.Family) -> (String, String) {
        var name = family.name
        if family.kind == .counter, name.hasSuffix("_total") { name.removeLast(6) }
        let unit = name.hasSuffix("_seconds") ? "s" : name.hasSuffix("_bytes") ? "By" : name.hasSuffix("_ratio") ? "1" : ""
        return (name, unit)
    }

    /// A finite number as JSON: integers without a fraction, others with up to nine significant decimals.
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    private static func count(_ value: Double) -> UInt64 {
        guard value.isFinite, value > 0 else { return 0 }
        return value >= 1.8e19 ? .max : UInt64(value)
    }
}
