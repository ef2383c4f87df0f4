import FuseboxText
/// The terminal report (colour only when asked, i.e. on a TTY).
public enum TextReport {
    /// Events shown per incident; the rest are counted (see `--incident`).
    public static let eventLimit = 50

    public static func render(_ a: Analysis, summaryOnly: Bool, colour: Bool) -> String {
        var text = ""
        write(a, summaryOnly: summaryOnly, colour: colour) { text += $0 }
        return text
    }

    /// Writes the report in pieces, one incident at a time.
    public static func write(_ a: Analysis, summaryOnly: Bool, colour: Bool, to emit: (String) -> Void) {
        let paint = Paint(on: colour)
        var out = [
            paint("Fusebox incident report", "1"),
            "stores:    \(a.sources.joined(separator: ", ").escapingControlCharacters)",
            "period:    \(TimeText.full(a.from)) → \(TimeText.full(a.to)) (\(DurationFormat.text(a.to - a.from)))",
            "incidents: \(a.incidents.count)",
        ]
        if summaryOnly || a.incidents.isEmpty {
            out += ["", summaryTable(a)]
            if a.incidents.isEmpty { out += ["", "no incidents: no breaker left the closed state in this period"] }
            emit(out.joined(separator: "\n") + "\n")
            return
        }
        emit(out.joined(separator: "\n") + "\n")
        for overview in a.incidents {
            emit(([""] + section((try? a.detailed(overview, limit: eventLimit)) ?? overview, paint: paint)).joined(separator: "\n") + "\n")
        }
        emit("\n" + summaryTable(a) + "\n")
    }

    /// ANSI colour when asked for, plain text otherwise.
    struct Paint {
        let on: Bool
        func callAsFunction(_ text: String, _ code: String) -> String { on ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
    }

    /// One incident's lines: its facts, then its timeline. Everything that
    /// came from a store (names of breakers, instances and chains included:
    /// a fleet's history holds whatever its members wrote) is escaped for the terminal.
    static func section(_ incident: Incident, paint: Paint) -> [String] {
        var out = [paint("incident \(incident.id)", "1;31") + "  \(TimeText.full(incident.start)) → "
            + (incident.end.map(TimeText.full) ?? "ongoing") + "  (\(incident.durationText))"]
        out.append("  breakers:  \(incident.lanes.map(\.label).joined(separator: ", ").escapingControlCharacters)")
        let detect = incident.timeToDetect.map { DurationFormat.text($0) } ?? "-"
        let recover = incident.timeToRecover.map { DurationFormat.text($0) } ?? "not yet"
        out.append("  detect:    \(detect) (first failure → first trip)   recover: \(recover) (first trip → all closed)")
        out.append("  traffic:   \(incident.callsLine)")
        for f in incident.fallbacks {
            out.append("  fallback:  \(f.chain): \(f.from) → \(f.to)".escapingControlCharacters + " served \(f.count)")
        }
        for (chain, count) in incident.unserved.sorted(by: { $0.key < $1.key }) {
            out.append("  unserved:  \(chain.escapingControlCharacters): \(count) routes found no breaker")
        }
        if !incident.errorMix.isEmpty {
            out.append("  errors:    " + incident.errorMix.map { "\($0.label.escapingControlCharacters) ×\($0.count)" }.joined(separator: ", ") + " (sampled)")
        }
        for flag in incident.flags { out.append("  " + paint("flag", "33") + ":      \(flag.escapingControlCharacters)") }
        out.append("  timeline:")
        let width = max(8, incident.lanes.map(\.label.count).max() ?? 8)
        for event in incident.events {
            let lane = (event.lane?.label ?? "").escapingControlCharacters.padding(width)
            let plain = event.text.escapingControlCharacters
            let text: String
            switch event.kind {
            case .trip, .probeFailed: text = paint(plain, "31")
            case .probeSucceeded, .recovered: text = paint(plain, "32")
            case .halfOpen: text = paint(plain, "33")
            default: text = plain
            }
            out.append("    \(TimeText.clock(event.at))  \(lane)  \(text)")
        }
        if incident.transitionCount > eventLimit {
            out.append("    … \(incident.transitionCount - eventLimit) more transitions: fusebox analyze --incident \(incident.id) --format json")
        }
        return out
    }

    static func summaryTable(_ a: Analysis) -> String {
        var rows = [["breaker", "incidents", "open time", "availability", "mean detect", "mean recover", "longest", "calls", "failed", "rejected"]]
        for s in a.summary {
            rows.append([
                s.lane.label.escapingControlCharacters, String(s.incidents), DurationFormat.text(s.openMs), TimeText.percent(s.availability),
                s.meanTimeToDetectMs.map { DurationFormat.text($0) } ?? "-", s.meanTimeToRecoverMs.map { DurationFormat.text($0) } ?? "-",
                s.longestIncidentMs.map { DurationFormat.text($0) } ?? "-", String(s.traffic.calls), String(s.traffic.failed),
                s.traffic.rejectedCell,
            ])
        }
        return TextTable.figures(rows).render()
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
