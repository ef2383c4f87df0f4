import FuseboxCore
import FuseboxJSON

/// What one sidecar tells its peers over NOTIFY (sealed by `MessageSeal`):
/// a breaker's newly published state, or failures in a row seen on it.
/// Every message names its fleet and sender, when it was sent (PostgreSQL's
/// clock, ms) and its number in the sender's sequence (`ReplayGuard`).
enum FleetMessage {
    case state(PublishedState)
    case calls(CallsMessage)

    /// Who sent it, for which fleet, when (PostgreSQL's clock) and its number in the sender's sequence.
    var stamp: (fleet: String, origin: String, sentAt: Int64, sequence: Int64) {
        switch self {
        case .state(let s): return (s.fleet, s.origin, s.publishedAt, s.sequence)
        case .calls(let c): return (c.fleet, c.origin, c.sentAt, c.sequence)
        }
    }

    /// A message as JSON, or nil when something a message needs is missing or out of range.
    init?(_ value: JSONValue) {
        if case .string("calls")? = value["k"] {
            guard let calls = CallsMessage(value) else { return nil }
            self = .calls(calls)
        } else {
            guard let state = PublishedState(value) else { return nil }
            self = .state(state)
        }
    }
}

/// Failures in a row seen by `origin` on a shared breaker since its last
/// message (`resets`: a success came first, so peers forget its earlier ones).
struct CallsMessage {
    var fleet: String
    var breaker: String
    var failures: Int
    var resets: Bool
    var origin: String
    var sentAt: Int64
    var sequence: Int64

    init(fleet: String, breaker: String, failures: Int, resets: Bool, origin: String, sentAt: Int64, sequence: Int64) {
        self.fleet = fleet
        self.breaker = breaker
        self.failures = failures
        self.resets = resets
        self.origin = origin
        self.sentAt = sentAt
        self.sequence = sequence
    }

    init?(_ value: JSONValue) {
        guard case .string(let fleet)? = value["f"], case .string(let breaker)? = value["b"], case .string(let origin)? = value["o"],
              case .number(let count)? = value["n"], let failures = Int(count), failures >= 0,
              let sentAt = value.int64("t"), let sequence = value.int64("q")
        else { return nil }
        let resets: Bool
        if case .bool(true)? = value["r"] { resets = true } else { resets = false }
        self.init(fleet: fleet, breaker: breaker, failures: failures, resets: resets, origin: origin, sentAt: sentAt, sequence: sequence)
    }

    var json: String {
        var writer = JSONWriter()
        writer.string("f", fleet)
        writer.string("k", "calls")
        writer.string("b", breaker)
        writer.int("n", failures)
        writer.bool("r", resets)
        writer.string("o", origin)
        writer.int("t", sentAt)
        writer.int("q", sequence)
        return String(decoding: writer.finish().dropLast(), as: UTF8.self)  // without the line end
    }
}

/// One row of `fleet_breakers`, as stored and as NOTIFY carries it.
struct PublishedState {
    var fleet: String
    var breaker: String
    var state: String
    /// The end of an opening in PostgreSQL's clock (as stored), and what remained of it when read or sent.
    var openUntil: Int64?
    var remaining: Int64?
    var probesFailed: Int
    var epoch: Int64
    var origin: String
    /// When it was published, in PostgreSQL's clock.
    var publishedAt: Int64
    /// Its number in the sender's sequence; 0 for a row read from the table.
    var sequence: Int64 = 0

    init(
        fleet: String, breaker: String, state: String, openUntil: Int64?, remaining: Int64?, probesFailed: Int, epoch: Int64, origin: String,
        publishedAt: Int64, sequence: Int64 = 0
    ) {
        self.fleet = fleet
        self.breaker = breaker
        self.state = state
        self.openUntil = openUntil
        self.remaining = remaining
        self.probesFailed = probesFailed
        self.epoch = epoch
        self.origin = origin
        self.publishedAt = publishedAt
        self.sequence = sequence
    }

    init?(_ value: JSONValue) {
        func text(_ key: String) -> String? { if case .string(let s)? = value[key] { return s } else { return nil } }
        guard let fleet = text("f"), let breaker = text("b"), let state = text("s"), let epoch = value.int64("e"),
              let origin = text("o"), let published = value.int64("t"), let sequence = value.int64("q") else { return nil }
        let probes = value.int64("p") ?? 0
        self.init(fleet: fleet, breaker: breaker, state: state, openUntil: value.int64("u"), remaining: value.int64("r"),
                  probesFailed: Int(clamping: probes), epoch: epoch, origin: origin, publishedAt: published, sequence: sequence)
    }

    var json: String {
        var writer = JSONWriter()
        writer.string("f", fleet)
        writer.string("b", breaker)
        writer.string("s", state)
        writer.int("u", openUntil)
        writer.int("r", remaining)
        writer.int("p", probesFailed)
        writer.int("e", epoch)
        writer.string("o", origin)
        writer.int("t", publishedAt)
        writer.int("q", sequence)
        return String(decoding: writer.finish().dropLast(), as: UTF8.self)  // without the line end
    }

    /// The peer's decision in this host's clock: an opening ends `remaining` from `now`.
    func fleetState(at now: Timestamp) -> FleetState? {
        switch state {
        case "open": return remaining.map { .open(until: now + .milliseconds($0), probesFailed: probesFailed) }
        case "closed": return .closed
        case "reset": return .reset
        default:
            guard state.hasPrefix("forced:"), let mode = ForcedMode(rawValue: String(state.dropFirst(7))) else { return nil }
            return .forced(mode)
        }
    }
}

extension JSONValue {
    /// A whole number that fits in 64 bits, else nil.
    func int64(_ key: String) -> Int64? {
        if case .number(let text)? = self[key] { return Int64(text) } else { return nil }
    }
}
