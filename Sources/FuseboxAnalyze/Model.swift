import FuseboxCore

/// One breaker of one sidecar: a swimlane.
public struct Lane: Hashable, Comparable, Sendable {
    public var instance: String
    public var breaker: String
    /// `breaker`, or `instance/breaker` when several instances are analysed together.
    public var label: String

    public static func < (a: Lane, b: Lane) -> Bool { (a.instance, a.breaker) < (b.instance, b.breaker) }
}

/// A transition as the store holds it.
public struct StoredTransition: Sendable, Equatable {
    public var at: Int64
    public var lane: Lane
    public var from: String
    public var to: String
    public var reason: String
    public var generation: Int64
    public var failureCount: Int
    public var callsInWindow: Int
    public var failureRate: Double
    public var slowCallRate: Double
    public var lastError: String?
    public var lastStatus: Int?
    public var openUntil: Int64?
    /// The sidecar's own probe behind it (active probes).
    public var probe: StoredProbe? = nil
}

/// An active probe's result as a transition row keeps it.
public struct StoredProbe: Sendable, Equatable {
    public var outcome: String
    public var latencyMs: Int?
    public var status: Int?

    /// `probe failure: 401 in 8 ms`, `probe timeout after 500 ms`.
    public var text: String {
        let ms = latencyMs.map { "\($0) ms" } ?? "?"
        if outcome == "timeout" { return "probe timeout after \(ms)" }
        return "probe \(outcome): \(status.map(String.init) ?? "no answer") in \(ms)"
    }
}

/// A span of one state on one lane; `end` nil while it lasts past the data.
public struct Segment: Sendable, Equatable {
    public var lane: Lane
    public var state: String
    public var start: Int64
    public var end: Int64?

    /// Whether the breaker refused traffic (the states that make an incident).
    public var isTripped: Bool { Segment.trippedStates.contains(state) }
    static let trippedStates: Set<String> = ["open", "half_open", "forced_open"]
}

/// Something that happened during an incident, in time order.
public struct IncidentEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case firstFailure = "first_failure"
        case trip
        case halfOpen = "half_open"
        case probeSucceeded = "probe_succeeded"
        case probeFailed = "probe_failed"
        case forced
        case reset
        case recovered
        case other
    }

    public var at: Int64
    public var lane: Lane?
    public var kind: Kind
    /// One line for people.
    public var text: String
    public var transition: StoredTransition?
}

public struct FallbackCount: Sendable, Equatable {
    public var chain: String
    public var from: String
    public var to: String
    public var count: Int
}

/// Traffic summed over an incident (or a breaker over the period).
public struct TrafficTotals: Sendable, Equatable {
    public var successes = 0, failures = 0, timeouts = 0, ignored = 0, rejected = 0
    public var fallbacksIn = 0, fallbacksOut = 0, slow = 0, expired = 0, abandoned = 0
    /// Refusals by a budget, also in `rejected`.
    public var rejectedConcurrency = 0, rejectedRate = 0, rejectedTokens = 0

    public var failed: Int { failures + timeouts }
    public var rejectedByBudget: Int { rejectedConcurrency + rejectedRate + rejectedTokens }
    public var calls: Int { successes + failures + timeouts + ignored }
}

public struct Incident: Sendable, Equatable {
    /// `inc-20260101T000231`: the start, UTC, to the second.
    public var id: String
    public var start: Int64
    /// nil: still going when the data ends.
    public var end: Int64?
    public var lanes: [Lane]
    public var segments: [Segment]
    /// Filled by `Analysis.detailed(_:limit:)`; empty in the overview.
    public var events: [IncidentEvent]
    public var firstFailure: Int64?
    /// Whose failure came first.
    public var firstFailingLane: Lane?
    public var firstOpen: Int64
    /// Transitions in the incident (its events are loaded on demand).
    public var transitionCount = 0
    public var timeToDetect: Int64? { firstFailure.map { firstOpen - $0 } }
    public var timeToRecover: Int64? { end.map { $0 - firstOpen } }
    public var traffic = TrafficTotals()
    public var fallbacks: [FallbackCount] = []
    /// Routes no breaker of the chain could serve, per chain.
    public var unserved: [String: Int] = [:]
    /// "503" or "timeout" with counts, most first.
    public var errorMix: [(label: String, count: Int)] = []
    /// Closed → open trips per lane, when there were three or more.
    public var flapping: [Lane: Int] = [:]
    /// Several breakers tripped at once: a hint the cause is on our side.
    public var correlated: Bool { Set(segments.filter(\.isTripped).map(\.lane.breaker)).count > 1 }

    public static func == (a: Incident, b: Incident) -> Bool {
        a.id == b.id && a.start == b.start && a.end == b.end && a.lanes == b.lanes && a.segments == b.segments
            && a.events == b.events && a.traffic == b.traffic && a.fallbacks == b.fallbacks && a.unserved == b.unserved
            && a.errorMix.map(\.label) == b.errorMix.map(\.label) && a.errorMix.map(\.count) == b.errorMix.map(\.count)
    }
}

/// Per breaker over the period (`--summary`).
public struct BreakerSummary: Sendable, Equatable {
    public var lane: Lane
    public var incidents: Int
    public var openMs: Int64
    public var availability: Double
    public var meanTimeToDetectMs: Int64?
    public var meanTimeToRecoverMs: Int64?
    public var longestIncidentMs: Int64?
    public var traffic: TrafficTotals
}

/// Everything a renderer needs.
public struct Analysis: Sendable {
    public var sources: [String]
    public var from: Int64
    public var to: Int64
    public var lanes: [Lane]
    /// Every lane's states over the period, compact.
    let histories: [LaneHistory]
    public var incidents: [Incident]
    public var summary: [BreakerSummary]
    /// Loads an incident's events from its store when a report needs them.
    let details: IncidentDetails
    /// Per lane, calls and failures in columns across the period (for the HTML page).
    public var histogram: [Lane: [(calls: Int, failed: Int)]]
    public var histogramColumns: Int

    /// The incident with its events: the first failure, each transition
    /// (at most `limit`, the earliest), and the recovery.
    public func detailed(_ incident: Incident, limit: Int? = nil) throws -> Incident {
        try details.load(incident, limit: limit)
    }
}
