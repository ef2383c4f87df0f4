import FuseboxJSON

/// The machine-readable report; its schema is documented in docs/analyze.md
/// and versioned by the `schema` field.
public enum JSONReport {
    public static let schema = "fusebox.analyze/v1"

    public static func render(_ a: Analysis) -> String {
        var text = ""
        write(a) { text += $0 }
        return text
    }

    /// One JSON document, written incident by incident with every event.
    public static func write(_ a: Analysis, to emit: (String) -> Void) {
        var head = JSONWriter(capacity: 1_024)
        head.string("schema", schema)
        head.stringArray("sources", a.sources)
        head.string("from", TimeText.rfc(a.from))
        head.string("to", TimeText.rfc(a.to))
        var opening = head.finish()
        opening.removeLast(2)  // "}\n": the object goes on
        emit(String(decoding: opening, as: UTF8.self) + ",\"incidents\":[")
        for (index, overview) in a.incidents.enumerated() {
            let i = (try? a.detailed(overview)) ?? overview
            var w = JSONWriter(capacity: 4_096)
            incident(&w, i)
            var bytes = w.finish()
            bytes.removeLast()  // newline
            emit((index > 0 ? "," : "") + String(decoding: bytes, as: UTF8.self))
        }
        var tail = JSONWriter(capacity: 1_024)
        tail.objects("summary", a.summary) { w, s in summary(&w, s) }
        var closing = tail.finish()
        closing.removeFirst()  // "{": continues the document
        emit("]," + String(decoding: closing, as: UTF8.self))
    }

    /// The document for stores with nothing recorded: no period, no incidents.
    public static func empty(sources: [String]) -> String {
        var w = JSONWriter(capacity: 256)
        w.string("schema", schema)
        w.stringArray("sources", sources)
        w.string("from", nil)
        w.string("to", nil)
        w.objects("incidents", [Incident]()) { _, _ in }
        w.objects("summary", [BreakerSummary]()) { _, _ in }
        return String(decoding: w.finish(), as: UTF8.self)
    }

    static func incident(_ w: inout JSONWriter, _ i: Incident) {
            w.string("id", i.id)
            w.string("start", TimeText.rfc(i.start))
            w.string("end", TimeText.rfc(i.end))
            w.bool("ongoing", i.end == nil)
            w.int("duration_ms", i.end.map { $0 - i.start })
            w.stringArray("breakers", i.lanes.map(\.label))
            w.string("first_failure", TimeText.rfc(i.firstFailure))
            w.string("first_open", TimeText.rfc(i.firstOpen))
            w.int("time_to_detect_ms", i.timeToDetect)
            w.int("time_to_recover_ms", i.timeToRecover)
            w.object("traffic") { w in traffic(&w, i.traffic) }
            w.objects("fallbacks", i.fallbacks) { w, f in
                w.string("chain", f.chain); w.string("from", f.from); w.string("to", f.to); w.int("count", f.count)
            }
            w.objects("unserved", i.unserved.sorted { $0.key < $1.key }) { w, u in w.string("chain", u.key); w.int("count", u.value) }
            w.objects("error_mix", i.errorMix) { w, e in w.string("label", e.label); w.int("count", e.count) }
            w.objects("flapping", i.flapping.sorted { $0.key < $1.key }) { w, f in w.string("breaker", f.key.label); w.int("trips", f.value) }
            w.bool("correlated", i.correlated)
            w.objects("segments", i.segments) { w, s in
                w.string("breaker", s.lane.breaker); w.string("instance", s.lane.instance); w.string("state", s.state)
                w.string("start", TimeText.rfc(s.start)); w.string("end", TimeText.rfc(s.end))
            }
            w.objects("events", i.events) { w, e in
                w.string("at", TimeText.rfc(e.at))
                w.string("breaker", e.lane?.breaker); w.string("instance", e.lane?.instance)
                w.string("kind", e.kind.rawValue)
                w.string("text", e.text)
                if let t = e.transition {
                    w.string("from_state", t.from); w.string("to_state", t.to); w.string("reason", t.reason)
                    w.int("failure_count", t.failureCount); w.double("failure_rate", t.failureRate)
                    w.int("calls_in_window", t.callsInWindow); w.int("last_status", t.lastStatus); w.string("last_error", t.lastError)
                    w.string("open_until", TimeText.rfc(t.openUntil))
                    if let probe = t.probe {
                        w.string("probe_outcome", probe.outcome); w.int("probe_latency_ms", probe.latencyMs); w.int("probe_status", probe.status)
                    }
                }
            }
    }

    static func summary(_ w: inout JSONWriter, _ s: BreakerSummary) {
            w.string("breaker", s.lane.breaker); w.string("instance", s.lane.instance)
            w.int("incidents", s.incidents); w.int("open_ms", s.openMs); w.double("availability", s.availability)
            w.int("mean_time_to_detect_ms", s.meanTimeToDetectMs); w.int("mean_time_to_recover_ms", s.meanTimeToRecoverMs)
            w.int("longest_incident_ms", s.longestIncidentMs)
            w.object("traffic") { w in traffic(&w, s.traffic) }
    }

    static func traffic(_ w: inout JSONWriter, _ t: TrafficTotals) {
        w.int("calls", t.calls); w.int("successes", t.successes); w.int("failures", t.failures); w.int("timeouts", t.timeouts)
        w.int("ignored", t.ignored); w.int("rejected", t.rejected); w.int("fallbacks_out", t.fallbacksOut)
        w.int("fallbacks_in", t.fallbacksIn); w.int("slow", t.slow); w.int("expired", t.expired); w.int("abandoned", t.abandoned)
        w.object("rejected_by_budget") { w in
            w.int("concurrency", t.rejectedConcurrency); w.int("rate", t.rejectedRate); w.int("tokens", t.rejectedTokens)
        }
    }
}
