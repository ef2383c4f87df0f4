import FuseboxText
/// For pasting into a postmortem document.
public enum MarkdownReport {
    public static let eventLimit = 200

    public static func render(_ a: Analysis, summaryOnly: Bool) -> String {
        var text = ""
        write(a, summaryOnly: summaryOnly) { text += $0 }
        return text
    }

    public static func write(_ a: Analysis, summaryOnly: Bool, to emit: (String) -> Void) {
        var out = [
            "# Incident report",
            "",
            "- **Stores:** \(a.sources.map(\.markdownCode).joined(separator: ", "))",
            "- **Period:** \(TimeText.full(a.from)) → \(TimeText.full(a.to)) (\(DurationFormat.text(a.to - a.from)))",
            "- **Incidents:** \(a.incidents.count)",
        ]
        if !summaryOnly {
            for overview in a.incidents {
                let incident = (try? a.detailed(overview, limit: eventLimit)) ?? overview
                out += [
                    "", "## \(incident.id)", "",
                    "| | |", "|---|---|",
                    "| Start | \(TimeText.full(incident.start)) |",
                    "| End | \(incident.end.map(TimeText.full) ?? "ongoing") |",
                    "| Duration | \(incident.durationText) |",
                    "| Breakers | \(incident.lanes.map(\.label.markdownCode).joined(separator: ", ")) |",
                    "| Time to detect | \(incident.timeToDetect.map { DurationFormat.text($0) } ?? "-") |",
                    "| Time to recover | \(incident.timeToRecover.map { DurationFormat.text($0) } ?? "not yet") |",
                    "| Traffic | \(incident.callsLine) |",
                ]
                for f in incident.fallbacks {
                    out.append("| Fallback (\(f.chain.markdownText)) | \(f.from.markdownCode) → \(f.to.markdownCode): \(f.count) |")
                }
                for (chain, count) in incident.unserved.sorted(by: { $0.key < $1.key }) {
                    out.append("| Unserved (\(chain.markdownText)) | \(count) |")
                }
                if !incident.errorMix.isEmpty {
                    out.append("| Errors (sampled) | " + incident.errorMix.map { "\($0.label.markdownText) ×\($0.count)" }.joined(separator: ", ") + " |")
                }
                for flag in incident.flags { out.append("| Flag | \(flag.markdownText) |") }
                out += ["", "### Timeline", "", "| Time (UTC) | Breaker | Event |", "|---|---|---|"]
                for event in incident.events {
                    out.append("| \(TimeText.clock(event.at)) | \(event.lane?.label.markdownCode ?? "") | \(event.text.markdownText) |")
                }
                if incident.transitionCount > eventLimit {
                    out.append("| | | … \(incident.transitionCount - eventLimit) more transitions (`fusebox analyze --incident \(incident.id) --format json`) |")
                }
                emit(out.joined(separator: "\n") + "\n")
                out = []
            }
        }
        out += ["", "## Per breaker", "", "| Breaker | Incidents | Open time | Availability | Mean detect | Mean recover | Longest | Calls | Failed | Rejected |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in a.summary {
            out.append("| \(s.lane.label.markdownCode) | \(s.incidents) | \(DurationFormat.text(s.openMs)) | \(TimeText.percent(s.availability)) | "
                + "\(s.meanTimeToDetectMs.map { DurationFormat.text($0) } ?? "-") | \(s.meanTimeToRecoverMs.map { DurationFormat.text($0) } ?? "-") | "
                + "\(s.longestIncidentMs.map { DurationFormat.text($0) } ?? "-") | \(s.traffic.calls) | \(s.traffic.failed) | \(s.traffic.rejectedCell) |")
        }
        emit(out.joined(separator: "\n") + "\n")
    }
}

extension String {
    var replacingPipes: String { split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|") }

    /// Text from a store in a table cell: control characters escaped, pipes too.
    var markdownText: String { escapingControlCharacters.replacingPipes }

    /// A name from a store as inline code in a table cell. A backtick in it
    /// would end a one-backtick span early, so such a name gets a double one.
    var markdownCode: String {
        let text = markdownText
        return text.contains("`") ? "`` \(text) ``" : "`\(text)`"
    }
}
