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
    case empty([String])
    case badRange(String)
    case noSuchIncident(String)
    case noSuchChain(String)

    public var description: String {
        switch self {
        case .store(let message): return message
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
        var breakerFilter = Set(options.breakers)
        if let chain = options.chain {
            var members = Set<String>()
            for source in sources { members.formUnion(try source.chainMembers(chain)) }
            guard !members.isEmpty else { throw AnalyzeError.noSuchChain(chain) }
            breakerFilter = breakerFilter.isEmpty ? members : breakerFilter.intersection(members)
        }
        var extent: (Int64, Int64)?
        for source in sources {
            guard let span = try source.extent() else { continue }
            extent = extent.map { (min($0.0, span.0), max($0.1, span.1)) } ?? span
        }
        guard let extent else { throw AnalyzeError.empty(options.databases) }
        let from = options.since ?? extent.0
        let to = max(from, options.until ?? extent.1)
        let instances = Set(try sources.flatMap { try $0.instances() })
        let multiHost = instances.count > 1

        var transitions: [StoredTransition] = []
        var priorStates: [Lane: String] = [:]
        var laneSource: [Lane: StoreSource] = [:]
        for source in sources {
            let loaded = try source.transitions(from: from, to: to, breakers: breakerFilter, multiHost: multiHost)
            for t in loaded { laneSource[t.lane] = source }
            transitions += loaded
            for (lane, state) in try source.statesBefore(from, breakers: breakerFilter, multiHost: multiHost) {
                priorStates[lane] = state
                laneSource[lane] = source
            }
            for lane in try source.trafficLanes(from: from, to: to, breakers: breakerFilter, multiHost: multiHost) where laneSource[lane] == nil {
                laneSource[lane] = source
            }
        }
        timing.mark("load")
        transitions.sort { ($0.at, $0.lane) < ($1.at, $1.lane) }
        timing.mark("sort")
        let lanes = laneSource.keys.sorted()
        let segments = IncidentFinder.segments(transitions, prior: priorStates, lanes: lanes, from: from)
        var incidents = IncidentFinder.incidents(segments: segments, transitions: transitions, to: to, options: options)
        timing.mark("incidents")
        for index in incidents.indices {
            let previousEnd = index > 0 ? incidents[index - 1].end ?? incidents[index - 1].start : nil
            try IncidentFinder.enrich(&incidents[index], sources: laneSource, previousEnd: previousEnd, options: options)
        }
        timing.mark("enrich")
        var rangeFrom = from, rangeTo = to
        if let wanted = options.incident {
            guard let found = incidents.first(where: { $0.id == wanted }) else { throw AnalyzeError.noSuchIncident(wanted) }
            incidents = [found]
            rangeFrom = max(from, (found.firstFailure ?? found.start) - 60_000)
            rangeTo = min(to, (found.end ?? to) + 60_000)
        }
        let summary = try IncidentFinder.summary(
            lanes: lanes, segments: segments, incidents: incidents, sources: laneSource, from: rangeFrom, to: rangeTo
        )
        timing.mark("summary")
        // No more columns than 10-second traffic buckets, or the bars comb.
        let columns = Int(min(Int64(options.histogramColumns), max(1, (rangeTo - rangeFrom) / 10_000)))
        var histogram: [Lane: [(calls: Int, failed: Int)]] = [:]
        for (_, group) in Dictionary(grouping: lanes, by: { ObjectIdentifier(laneSource[$0]!) }) {
            let source = laneSource[group[0]]!
            for (lane, values) in try source.histogram(lanes: group, from: rangeFrom, to: rangeTo, columns: columns) {
                histogram[lane] = values
            }
        }
        timing.mark("histogram")
        return Analysis(
            sources: options.databases, from: rangeFrom, to: rangeTo, lanes: lanes,
            segments: segments.filter { ($0.end ?? .max) > rangeFrom && $0.start < rangeTo }, incidents: incidents, summary: summary,
            histogram: histogram, histogramColumns: columns, transitionsRead: transitions.count
        )
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
