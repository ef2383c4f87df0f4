/// One self-contained page: no scripts, fonts or images fetched from
/// anywhere. An SVG swimlane per breaker coloured by state, its traffic and
/// failures plotted under it, and each incident's events beside.
public enum HTMLReport {
    static let colours = [
        "closed": "#43a047", "open": "#e53935", "half_open": "#fbc02d", "forced_open": "#8e24aa",
        "disabled": "#9e9e9e", "metrics_only": "#1e88e5",
    ]

    /// Events listed per incident on the page.
    public static let eventLimit = 300

    public static func render(_ a: Analysis) -> String {
        var page = ""
        write(a) { page += $0 }
        return page
    }

    /// The page in pieces (an incident at a time), so a month of incidents is
    /// never held whole.
    public static func write(_ a: Analysis, to emit: (String) -> Void) {
        emit("""
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>Fusebox incident report \(escape(TimeText.full(a.from))) – \(escape(TimeText.full(a.to)))</title>
        <style>
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#212121;background:#fff}
        h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px} .muted{color:#757575}
        table{border-collapse:collapse;margin:8px 0} td,th{padding:3px 10px;border-bottom:1px solid #e0e0e0;text-align:left;vertical-align:top}
        th{background:#fafafa} td.num{text-align:right;font-variant-numeric:tabular-nums}
        .incident{display:flex;gap:24px;flex-wrap:wrap;border:1px solid #e0e0e0;border-radius:6px;padding:12px;margin:12px 0}
        .facts{min-width:320px} .events{flex:1;min-width:420px} .flag{color:#e65100}
        .legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
        </style></head><body>
        <h1>Fusebox incident report</h1>
        <div class="muted">\(escape(a.sources.joined(separator: ", "))) · \(escape(TimeText.full(a.from))) → \(escape(TimeText.full(a.to))) · \(a.incidents.count) incident\(a.incidents.count == 1 ? "" : "s")</div>
        <div class="legend">\(colours.keys.sorted().map { "<span><i style=\"background:\(colours[$0]!)\"></i>\($0)</span>" }.joined())<span><i style="background:#90a4ae"></i>calls</span><span><i style="background:#e53935"></i>failed calls</span></div>

        """)
        emit(swimlanes(a))
        emit("<h2>Incidents</h2>\n")
        if a.incidents.isEmpty { emit("<p>No breaker left the closed state in this period.</p>\n") }
        for overview in a.incidents { emit(section((try? a.detailed(overview, limit: eventLimit)) ?? overview)) }
        emit(summaryTable(a) + "\n</body></html>\n")
    }

    /// One incident: its facts beside its events.
    static func section(_ incident: Incident) -> String {
        var html = "<section class=\"incident\" id=\"\(escape(incident.id))\"><div class=\"facts\"><h2>\(escape(incident.id))</h2><table>\n"
        html += facts(incident).map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>" }.joined(separator: "\n")
        html += "</table>" + incident.flags.map { "<p class=\"flag\">\(escape($0))</p>" }.joined() + "</div>\n"
        html += "<div class=\"events\"><table><tr><th>time (UTC)</th><th>breaker</th><th>event</th></tr>\n"
        html += incident.events.map {
            "<tr><td>\(TimeText.clock($0.at))</td><td>\(escape($0.lane?.label ?? ""))</td><td>\(escape($0.text))</td></tr>"
        }.joined(separator: "\n")
        if incident.transitionCount > eventLimit {
            html += "<tr><td></td><td></td><td>… \(incident.transitionCount - eventLimit) more transitions (fusebox analyze --incident \(escape(incident.id)) --format json)</td></tr>"
        }
        return html + "</table></div></section>\n"
    }

    /// The facts column of an incident, as (label, value) rows.
    static func facts(_ incident: Incident) -> [(String, String)] {
        var facts: [(String, String)] = [
            ("start", TimeText.full(incident.start)), ("end", incident.end.map(TimeText.full) ?? "ongoing"),
            ("duration", incident.durationText), ("breakers", incident.lanes.map(\.label).joined(separator: ", ")),
            ("time to detect", incident.timeToDetect.map { DurationFormat.text($0) } ?? "-"),
            ("time to recover", incident.timeToRecover.map { DurationFormat.text($0) } ?? "not yet"),
            ("traffic", incident.callsLine),
        ]
        facts += incident.fallbacks.map { ("fallback \($0.chain)", "\($0.from) → \($0.to): \($0.count)") }
        facts += incident.unserved.sorted { $0.key < $1.key }.map { ("unserved \($0.key)", String($0.value)) }
        if !incident.errorMix.isEmpty { facts.append(("errors (sampled)", incident.errorMix.map { "\($0.label) ×\($0.count)" }.joined(separator: ", "))) }
        return facts
    }

    /// The per-breaker table at the end of the page.
    static func summaryTable(_ a: Analysis) -> String {
        var html = "<h2>Per breaker</h2><table><tr><th>breaker</th><th>incidents</th><th>open time</th><th>availability</th><th>mean detect</th><th>mean recover</th><th>calls</th><th>failed</th></tr>\n"
        html += a.summary.map { s in
            "<tr><td>\(escape(s.lane.label))</td><td class=\"num\">\(s.incidents)</td><td class=\"num\">\(DurationFormat.text(s.openMs))</td>"
                + "<td class=\"num\">\(TimeText.percent(s.availability))</td><td class=\"num\">\(s.meanTimeToDetectMs.map { DurationFormat.text($0) } ?? "-")</td>"
                + "<td class=\"num\">\(s.meanTimeToRecoverMs.map { DurationFormat.text($0) } ?? "-")</td><td class=\"num\">\(s.traffic.calls)</td><td class=\"num\">\(s.traffic.failed)</td></tr>"
        }.joined(separator: "\n")
        return html + "</table>"
    }

    /// The SVG: one lane per breaker, states as coloured bars, traffic under it.
    static func swimlanes(_ a: Analysis) -> String {
        let left = 150.0, width = 900.0, laneHeight = 22.0, plotHeight = 28.0, gap = 14.0, top = 24.0
        let rowHeight = laneHeight + plotHeight + gap
        let height = top + Double(a.lanes.count) * rowHeight + 10
        let span = Double(max(1, a.to - a.from))
        func x(_ ms: Int64) -> Double { left + (Double(min(max(ms, a.from), a.to) - a.from) / span) * width }
        func f(_ v: Double) -> String { String(Int((v * 10).rounded()) / 10) + "." + String(abs(Int((v * 10).rounded())) % 10) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 20))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"breaker states over time\">\n"
        // Time axis: five ticks.
        for i in 0...4 {
            let t = a.from + Int64(Double(i) / 4 * span)
            svg += "<line x1=\"\(f(x(t)))\" y1=\"\(f(top - 6))\" x2=\"\(f(x(t)))\" y2=\"\(f(height - 10))\" stroke=\"#eeeeee\"/>"
            let anchor = i == 0 ? "start" : i == 4 ? "end" : "middle"
            svg += "<text x=\"\(f(x(t)))\" y=\"12\" font-size=\"11\" text-anchor=\"\(anchor)\" fill=\"#757575\">\(escape(i == 0 || i == 4 ? TimeText.full(t) : TimeText.clock(t).prefix(8).description))</text>\n"
        }
        for (row, lane) in a.lanes.enumerated() {
            let y = top + Double(row) * rowHeight
            svg += "<g class=\"lane\" data-breaker=\"\(escape(lane.label))\">\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 15))\" font-size=\"12\" text-anchor=\"end\">\(escape(lane.label))</text>\n"
            for s in a.stateBars(lane, pixels: width) {
                let x0 = x(s.start), x1 = x(s.end ?? a.to)
                svg += "<rect x=\"\(f(x0))\" y=\"\(f(y))\" width=\"\(f(max(0.5, x1 - x0)))\" height=\"\(f(laneHeight))\" fill=\"\(colours[s.state] ?? "#bdbdbd")\">"
                svg += "<title>\(escape("\(lane.label) \(s.state) \(TimeText.full(s.start)) → \(s.end.map(TimeText.full) ?? "end")"))</title></rect>\n"
            }
            if let columns = a.histogram[lane] {
                let peak = Double(max(1, columns.map(\.calls).max() ?? 1))
                let columnWidth = width / Double(max(1, a.histogramColumns))
                let base = y + laneHeight + plotHeight
                for (i, column) in columns.enumerated() where column.calls > 0 {
                    let h = Double(column.calls) / peak * (plotHeight - 2)
                    let hf = Double(column.failed) / peak * (plotHeight - 2)
                    let cx = left + Double(i) * columnWidth
                    svg += "<rect x=\"\(f(cx))\" y=\"\(f(base - h))\" width=\"\(f(max(0.5, columnWidth - 0.3)))\" height=\"\(f(h))\" fill=\"#90a4ae\"/>"
                    if column.failed > 0 {
                        svg += "<rect x=\"\(f(cx))\" y=\"\(f(base - hf))\" width=\"\(f(max(0.5, columnWidth - 0.3)))\" height=\"\(f(hf))\" fill=\"#e53935\"/>"
                    }
                }
                svg += "\n"
            }
            svg += "</g>\n"
        }
        return svg + "</svg>\n"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if scalar.value < 0x20 && scalar != "\n" && scalar != "\t" { out += " " } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }
}

extension Analysis {
    /// A lane's states as bars at most `pixels` wide in all: spans too narrow
    /// to see are merged into their neighbour, showing the most severe state
    /// (open over forced open over half-open over the rest), so a month of
    /// flapping draws as red rather than as a million rectangles.
    /// A lane's history by binary search: `histories` is sorted by lane.
    func history(of lane: Lane) -> LaneHistory? {
        var low = 0, high = histories.count
        while low < high {
            let middle = (low + high) / 2
            if histories[middle].lane < lane { low = middle + 1 } else { high = middle }
        }
        return low < histories.count && histories[low].lane == lane ? histories[low] : nil
    }

    func stateBars(_ lane: Lane, pixels: Double) -> [Segment] {
        guard let history = history(of: lane) else { return [] }
        let minimum = max(1, Int64(Double(to - from) / pixels))
        let severity: [UInt8: Int] = [1: 4, 3: 3, 2: 2, 5: 1, 4: 1, 0: 0]
        var bars: [CompactSegment] = []
        for s in history.segments where s.end > from && s.start < to {
            var clipped = s
            clipped.start = max(s.start, from)
            clipped.end = min(s.end, to)
            if let last = bars.last, last.end - last.start < minimum || clipped.end - clipped.start < minimum {
                bars[bars.count - 1].end = clipped.end
                if severity[clipped.state, default: 0] > severity[last.state, default: 0] { bars[bars.count - 1].state = clipped.state }
            } else {
                bars.append(clipped)
            }
        }
        return bars.map { Segment(lane: lane, state: CompactSegment.stateNames[Int($0.state)], start: $0.start, end: $0.end) }
    }
}
