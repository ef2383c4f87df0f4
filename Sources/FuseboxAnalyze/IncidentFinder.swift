import FuseboxCore

/// From transitions to incidents: state segments per lane, the spans in which
/// some breaker refused traffic, merged across short gaps, then the counts,
/// lead-in and events of each.
enum IncidentFinder {
    /// The spans in which some breaker was not closed, merged across
    /// `mergeGap`, each with its lanes, clipped segments, first trip and
    /// flapping counts, all from the compact histories.
    static func incidents(_ histories: [LaneHistory], options: AnalyzeOptions) -> [Incident] {
        trippedSpans(histories, mergeGap: options.mergeGap).map { incident(in: $0, histories) }
    }

    /// Every lane's not-closed segments, sorted and merged where the gap is short.
    static func trippedSpans(_ histories: [LaneHistory], mergeGap: Int64) -> [(start: Int64, end: Int64)] {
        var tripped: [(start: Int64, end: Int64)] = []
        for history in histories {
            for segment in history.segments where segment.isTripped { tripped.append((segment.start, segment.end)) }
        }
        tripped.sort { $0.start < $1.start }
        var spans: [(start: Int64, end: Int64)] = []
        for segment in tripped {
            if let last = spans.last, last.end == .max || segment.start - last.end < mergeGap {
                spans[spans.count - 1].end = max(last.end, segment.end)
            } else {
                spans.append(segment)
            }
        }
        return spans
    }

    /// One span as an incident: the lanes that tripped in it and their segments.
    static func incident(in span: (start: Int64, end: Int64), _ histories: [LaneHistory]) -> Incident {
        var lanes: [Lane] = []
        var clipped: [Segment] = []
        var firstOpen: Int64?
        var firstTripped = Int64.max
        var flapping: [Lane: Int] = [:]
        var transitionCount = 0
        for history in histories {
            let part = clip(history, to: span)
            transitionCount += part.transitions
            if let open = part.firstOpen { firstOpen = min(firstOpen ?? open, open) }
            guard let tripped = part.firstTripped else { continue }
            firstTripped = min(firstTripped, tripped)
            lanes.append(history.lane)
            clipped += part.segments
            if part.trips >= 3 { flapping[history.lane] = part.trips }
        }
        lanes.sort()
        clipped.sort { ($0.lane, $0.start) < ($1.lane, $1.start) }
        return Incident(
            id: "inc-" + compactStamp(span.start), start: span.start, end: span.end == .max ? nil : span.end, lanes: lanes,
            segments: clipped, events: [], firstFailure: nil, firstOpen: firstOpen ?? (firstTripped == .max ? span.start : firstTripped),
            transitionCount: transitionCount, flapping: flapping
        )
    }

    /// What one lane did within a span.
    struct LaneInSpan {
        var segments: [Segment] = []
        /// closed → open steps, for flapping.
        var trips = 0
        var transitions = 0
        var firstOpen: Int64?
        /// Nil when the lane never left closed in the span (not involved).
        var firstTripped: Int64?
    }

    static func clip(_ history: LaneHistory, to span: (start: Int64, end: Int64)) -> LaneInSpan {
        let list = history.segments
        var part = LaneInSpan()
        var index = max(0, list.partitionIndex { $0.start > span.start } - 1)
        while index < list.count, list[index].start <= span.end {
            let s = list[index]
            defer { index += 1 }
            guard s.end > span.start else { continue }
            if s.isTripped { part.firstTripped = min(part.firstTripped ?? .max, max(s.start, span.start)) }
            if s.start >= span.start {
                part.transitions += 1
                if s.state == CompactSegment.openState {
                    part.firstOpen = min(part.firstOpen ?? s.start, s.start)
                    if index > 0, list[index - 1].state == 0 { part.trips += 1 }
                }
            }
            let start = max(s.start, span.start), end = min(s.end, span.end)
            if end > start {
                part.segments.append(Segment(lane: history.lane, state: CompactSegment.stateNames[Int(s.state)], start: start,
                                             end: end == .max ? nil : end))
            }
        }
        return part
    }

    /// Adds lead-in, traffic, fallbacks and the error mix from the stores.
    static func enrich(_ incident: inout Incident, sources: [Lane: StoreSource], previousEnd: Int64?, options: AnalyzeOptions) throws {
        let end = incident.end ?? .max
        let leadFrom = max(incident.start - options.leadIn, previousEnd ?? .min)
        var byInstance: [String: (source: StoreSource, breakers: [String])] = [:]
        for lane in incident.lanes {
            guard let source = sources[lane] else { continue }
            byInstance[lane.instance, default: (source, [])].breakers.append(lane.breaker)
        }
        var mix: [String: Int] = [:]
        var fallbacks: [String: FallbackCount] = [:]
        var firstFailing: Lane?
        for (instance, entry) in byInstance.sorted(by: { $0.key < $1.key }) {
            if let first = try entry.source.firstFailure(instance: instance, breakers: entry.breakers, from: leadFrom, to: incident.firstOpen),
               first.at < (incident.firstFailure ?? .max) {
                incident.firstFailure = first.at
                firstFailing = incident.lanes.first { $0.instance == instance && $0.breaker == first.breaker }
            }
            let totals = try entry.source.traffic(instance: instance, breakers: entry.breakers, from: bucketStart(incident.start), to: end)
            incident.traffic.add(totals)
            for (label, count) in try entry.source.errorMix(
                instance: instance, breakers: entry.breakers, from: incident.firstFailure ?? incident.start, to: end) {
                mix[label, default: 0] += count
            }
            for route in try entry.source.routes(instance: instance, from: bucketStart(incident.start), to: end) {
                if route.to.isEmpty {
                    incident.unserved[route.chain, default: 0] += route.count
                } else {
                    let key = "\(route.chain)\u{0}\(route.from)\u{0}\(route.to)"
                    fallbacks[key, default: FallbackCount(chain: route.chain, from: route.from, to: route.to, count: 0)].count += route.count
                }
            }
        }
        incident.fallbacks = fallbacks.values.sorted { ($0.chain, $0.from, $0.to) < ($1.chain, $1.from, $1.to) }
        incident.errorMix = mix.map { ($0.key, $0.value) }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.label < $1.label }
        incident.firstFailingLane = firstFailing
    }

    static func event(_ t: StoredTransition) -> IncidentEvent {
        let openFor = t.openUntil.map { " for \(DurationFormat.text($0 - t.at))" } ?? ""
        let last = [t.lastStatus.map(String.init), t.lastError.map { "\"\($0.prefix(80))\"" }].compactMap { $0 }.joined(separator: " ")
        let rate = t.callsInWindow > 0 ? ", failure rate \(Int((t.failureRate * 100).rounded()))% of \(t.callsInWindow) calls" : ""
        let stats = "\(t.failureCount) failures in a row\(rate)" + (last.isEmpty ? "" : ", last \(last)")
        let probe = t.probe.map { " (\($0.text))" } ?? ""
        switch (t.reason, t.from, t.to) {
        case ("forced", _, _): return IncidentEvent(at: t.at, lane: t.lane, kind: .forced, text: "forced \(t.from) → \(t.to) by an operator", transition: t)
        case ("reset", _, _): return IncidentEvent(at: t.at, lane: t.lane, kind: .reset, text: "reset by an operator (\(t.from) → closed)", transition: t)
        case ("restored", _, _):
            return IncidentEvent(at: t.at, lane: t.lane, kind: .other, text: "sidecar restarted: \(t.to) again as before\(openFor)", transition: t)
        case (_, "half_open", "closed"): return IncidentEvent(at: t.at, lane: t.lane, kind: .probeSucceeded, text: "probe succeeded: closed" + probe, transition: t)
        case (_, "half_open", "open"):
            return IncidentEvent(at: t.at, lane: t.lane, kind: .probeFailed, text: "probe failed (\(t.reason)): reopened\(openFor)" + probe + (last.isEmpty || !probe.isEmpty ? "" : ", last \(last)"), transition: t)
        case (_, _, "half_open"): return IncidentEvent(at: t.at, lane: t.lane, kind: .halfOpen, text: "half-open: probing (\(t.reason))", transition: t)
        case ("probe", _, "open"):
            return IncidentEvent(at: t.at, lane: t.lane, kind: .trip, text: "tripped by the sidecar's check\(probe); open\(openFor)", transition: t)
        case (_, _, "open"): return IncidentEvent(at: t.at, lane: t.lane, kind: .trip, text: "tripped (\(t.reason)): \(stats); open\(openFor)", transition: t)
        default: return IncidentEvent(at: t.at, lane: t.lane, kind: .other, text: "\(t.from) → \(t.to) (\(t.reason))", transition: t)
        }
    }

    static func summary(
        _ histories: [LaneHistory], incidents: [Incident], traffic: [Lane: TrafficTotals], from: Int64, to: Int64
    ) -> [BreakerSummary] {
        let period = max(1, to - from)
        // Each lane's incidents, indexed once: one incident may span thousands of lanes.
        var byLane: [Lane: [Int]] = [:]
        for (index, incident) in incidents.enumerated() {
            for lane in incident.lanes { byLane[lane, default: []].append(index) }
        }
        return histories.map { history in
            let lane = history.lane
            let open = history.segments.filter(\.isTripped).reduce(Int64(0)) { sum, s in
                sum + max(0, min(s.end, to) - max(s.start, from))
            }
            let involved = (byLane[lane] ?? []).map { incidents[$0] }
            let detects = involved.compactMap(\.timeToDetect)
            let recovers = involved.compactMap(\.timeToRecover)
            return BreakerSummary(
                lane: lane, incidents: involved.count, openMs: open, availability: 1 - Double(open) / Double(period),
                meanTimeToDetectMs: detects.isEmpty ? nil : detects.reduce(0, +) / Int64(detects.count),
                meanTimeToRecoverMs: recovers.isEmpty ? nil : recovers.reduce(0, +) / Int64(recovers.count),
                longestIncidentMs: involved.map { ($0.end ?? to) - $0.start }.max(), traffic: traffic[lane] ?? TrafficTotals()
            )
        }
    }

    static func bucketStart(_ ms: Int64) -> Int64 { ms - ((ms % 10_000) + 10_000) % 10_000 }

    /// `20260101T000231`.
    static func compactStamp(_ ms: Int64) -> String {
        let text = Timestamp.milliseconds(ms).rfc3339  // 2026-01-01T00:02:31.123Z
        return String(text.prefix(19)).filter { $0 != "-" && $0 != ":" }
    }
}

extension TrafficTotals {
    mutating func add(_ o: TrafficTotals) {
        successes += o.successes; failures += o.failures; timeouts += o.timeouts; ignored += o.ignored; rejected += o.rejected
        fallbacksIn += o.fallbacksIn; fallbacksOut += o.fallbacksOut; slow += o.slow; expired += o.expired; abandoned += o.abandoned
        rejectedConcurrency += o.rejectedConcurrency; rejectedRate += o.rejectedRate; rejectedTokens += o.rejectedTokens
    }
}

/// Durations for people: `45s`, `3m 12s`, `2h 05m`, `1d 3h`.
public enum DurationFormat {
    public static func text(_ ms: Int64) -> String {
        if ms < 1_000 { return "\(max(0, ms))ms" }
        let s = ms / 1_000
        if s < 60 { return ms % 1_000 == 0 || s >= 10 ? "\(s)s" : "\(s).\((ms % 1_000) / 100)s" }
        if s < 3_600 { return "\(s / 60)m \(pad(s % 60))s" }
        if s < 86_400 { return "\(s / 3_600)h \(pad(s / 60 % 60))m" }
        return "\(s / 86_400)d \(s / 3_600 % 24)h"
    }

    static func pad(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
}

extension RandomAccessCollection {
    /// The first index whose element satisfies `belongs`, for a predicate that
    /// is false then true along the collection (a binary search).
    func partitionIndex(_ belongs: (Element) -> Bool) -> Index {
        var low = startIndex, count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if belongs(self[middle]) {
                count = half
            } else {
                low = index(after: middle)
                count -= half + 1
            }
        }
        return low
    }
}
