import FuseboxCore
import FuseboxStore
import GRDB

/// What to analyse.
public struct AnalyzeOptions: Sendable {
    public var databases: [String]
    /// Unix milliseconds; nil: from the first record.
    public var since: Int64?
    /// Unix milliseconds; nil: to the last record.
    public var until: Int64?
    public var breakers: [String] = []
    public var chain: String?
    public var incident: String?
    /// Tripped spans closer than this are one incident.
    public var mergeGap: Int64 = 300_000
    /// How far before the first trip to look for the first failures.
    public var leadIn: Int64 = 300_000
    public var histogramColumns = 240

    public init(databases: [String]) { self.databases = databases }
}

public enum AnalyzeError: Error, CustomStringConvertible, Equatable {
    case store(String)
    /// A store file that does not exist.
    case missing(String)
    case empty([String])
    case badRange(String)
    case noSuchIncident(String)
    case noSuchChain(String)

    public var description: String {
        switch self {
        case .store(let message), .missing(let message): return message
        case .empty(let paths): return "no transitions or traffic recorded in \(paths.joined(separator: ", ")) (the store is empty)"
        case .badRange(let message): return message
        case .noSuchIncident(let id): return "no incident \(id) in the period (ids look like inc-20260101T000231; run without --incident to list them)"
        case .noSuchChain(let chain): return "no chain named \(chain) in the stores' configurations or routes"
        }
    }
}

/// Rebuilds incidents from one or more stores, read-only (a sidecar may be
/// writing to them at the same time).
public enum Analyzer {
    public static func analyze(_ options: AnalyzeOptions) throws(AnalyzeError) -> Analysis {
        if let since = options.since, let until = options.until, since > until {
            throw .badRange("--since (\(Timestamp.milliseconds(since).rfc3339)) is after --until (\(Timestamp.milliseconds(until).rfc3339))")
        }
        let sources: [StoreSource]
        do {
            sources = try options.databases.map { path throws -> StoreSource in StoreSource(path: path, queue: try StoreDatabase.openForReading(path)) }
            for source in sources { try source.queue.read { db in try StoreSanity.check(db, path: source.path) } }
        } catch let error as AnalyzeError {
            throw error
        } catch let error as StoreError {
            if case .notFound = error { throw .missing(error.description) }
            throw .store(error.description)
        } catch {
            throw .store("\(error)")
        }
        do {
            return try analyze(sources, options)
        } catch let error as AnalyzeError {
            throw error
        } catch {
            throw .store("reading the store failed: \(error)")
        }
    }

    static func analyze(_ sources: [StoreSource], _ options: AnalyzeOptions) throws -> Analysis {
        let timing = PhaseTimer()
        let breakerFilter = try breakers(in: sources, options)
        let (from, to) = try period(of: sources, options)
        let histories = try laneHistories(sources, breakers: breakerFilter, from: from, to: to)
        timing.mark("load")
        let sourceOf = Dictionary(histories.map { ($0.lane, $0.source) }, uniquingKeysWith: { first, _ in first })
        var incidents = IncidentFinder.incidents(histories, options: options)
        timing.mark("incidents")
        incidents = try enriched(incidents, sources: sourceOf, options)
        timing.mark("enrich")
        var rangeFrom = from, rangeTo = to
        if let wanted = options.incident {
            guard let found = incidents.first(where: { $0.id == wanted }) else { throw AnalyzeError.noSuchIncident(wanted) }
            incidents = [found]
            rangeFrom = max(from, (found.firstFailure ?? found.start) - 60_000)
            rangeTo = min(to, (found.end ?? to) + 60_000)
        }
        // No more columns than 10-second traffic buckets, or the bars comb.
        let columns = Int(min(Int64(options.histogramColumns), max(1, (rangeTo - rangeFrom) / 10_000)))
        let (traffic, histogram) = try trafficByLane(histories.map(\.lane), sources: sourceOf, from: rangeFrom, to: rangeTo, columns: columns)
        let summary = IncidentFinder.summary(histories, incidents: incidents, traffic: traffic, from: rangeFrom, to: rangeTo)
        timing.mark("summary")
        return Analysis(
            sources: options.databases, from: rangeFrom, to: rangeTo, lanes: histories.map(\.lane), histories: histories,
            incidents: incidents, summary: summary, details: IncidentDetails(sources: sourceOf),
            histogram: histogram, histogramColumns: columns
        )
    }

    /// The breakers asked for: `--breaker`s, narrowed to a `--chain`'s members.
    static func breakers(in sources: [StoreSource], _ options: AnalyzeOptions) throws -> Set<String> {
        var filter = Set(options.breakers)
        guard let chain = options.chain else { return filter }
        var members = Set<String>()
        for source in sources { members.formUnion(try source.chainMembers(chain)) }
        guard !members.isEmpty else { throw AnalyzeError.noSuchChain(chain) }
        filter = filter.isEmpty ? members : filter.intersection(members)
        return filter
    }

    /// From `--since` (or the first record) to `--until` (or the last).
    static func period(of sources: [StoreSource], _ options: AnalyzeOptions) throws -> (Int64, Int64) {
        var extent: (Int64, Int64)?
        for source in sources {
            guard let span = try source.extent() else { continue }
            extent = extent.map { (min($0.0, span.0), max($0.1, span.1)) } ?? span
        }
        guard let extent else { throw AnalyzeError.empty(options.databases) }
        let from = options.since ?? extent.0
        return (from, max(from, options.until ?? extent.1))
    }

    /// Every lane's states over the period, sorted by lane: read in parallel
    /// from the transitions, plus lanes with traffic and no transition (closed throughout).
    static func laneHistories(_ sources: [StoreSource], breakers: Set<String>, from: Int64, to: Int64) throws -> [LaneHistory] {
        let multiHost = Set(try sources.flatMap { try $0.instances() }).count > 1
        var histories: [LaneHistory] = []
        for source in sources {
            // A breaker's transitions per worker, each on its own connection.
            let loaded = try Parallel.map(try source.transitionBreakers(breakers), source: source) { breaker, connection in
                try connection.laneHistories(of: breaker, from: from, to: to, multiHost: multiHost)
            }.flatMap { $0 }.map { LaneHistory(lane: $0.lane, source: source, segments: $0.segments) }
            let known = Set(loaded.map(\.lane))
            histories += loaded
            for lane in try source.trafficLanes(from: from, to: to, breakers: breakers, multiHost: multiHost) where !known.contains(lane) {
                histories.append(LaneHistory(lane: lane, source: source, segments: [CompactSegment(start: from, end: .max, state: 0)]))
            }
        }
        histories.sort { $0.lane < $1.lane }
        return histories
    }

    /// Incidents with their traffic, errors and first failure: one range query
    /// per incident and store, split across the cores, each worker on its own
    /// read-only connections.
    static func enriched(_ incidents: [Incident], sources: [Lane: StoreSource], _ options: AnalyzeOptions) throws -> [Incident] {
        let previousEnds = incidents.indices.map { $0 > 0 ? incidents[$0 - 1].end ?? incidents[$0 - 1].start : nil }
        return try Parallel.map(Array(incidents.indices), sources: sources) { index, sources in
            var incident = incidents[index]
            try IncidentFinder.enrich(&incident, sources: sources, previousEnd: previousEnds[index], options: options)
            return incident
        }
    }

    /// Each lane's traffic totals and its histogram columns over the range.
    static func trafficByLane(
        _ lanes: [Lane], sources: [Lane: StoreSource], from: Int64, to: Int64, columns: Int
    ) throws -> ([Lane: TrafficTotals], [Lane: [(calls: Int, failed: Int)]]) {
        let scanned = try Parallel.map(lanes, sources: sources) { lane, sources in
            try sources[lane]!.traffic(lanes: [lane], from: from, to: to, columns: columns)[lane]!
        }
        var traffic: [Lane: TrafficTotals] = [:]
        var histogram: [Lane: [(calls: Int, failed: Int)]] = [:]
        for (lane, result) in zip(lanes, scanned) {
            traffic[lane] = result.totals
            histogram[lane] = result.columns
        }
        return (traffic, histogram)
    }
}

/// Prints how long each phase took when FUSEBOX_ANALYZE_TIMING is set.
final class PhaseTimer {
    private var last = ContinuousClock.now
    private let enabled = getenv("FUSEBOX_ANALYZE_TIMING") != nil

    func mark(_ phase: String) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let line = Array("analyze: \(phase) \(now - last)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        last = now
    }
}

#if canImport(Glibc)
import Glibc
#endif
