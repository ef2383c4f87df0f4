import FuseboxCore

/// A request's `id`: any JSON string or number, echoed back exactly as sent.
public enum RequestID: Equatable, Sendable {
    case string(String)
    /// The number's text as the client wrote it.
    case number(String)
}

/// One decoded request of protocol v1.
public enum Request: Equatable, Sendable {
    /// `failOpen`: calls the client let through without a breaker since its last hello.
    case hello(protocol: Int?, client: String?, failOpen: Int = 0)
    /// `cost`: the call's estimated tokens, for a token budget. `timeoutMs`:
    /// how long the client waits for the answer; a queued acquire is refused before then.
    case acquire(breaker: String, cost: Int = 0, timeoutMs: Int? = nil)
    case route(chain: String, exclude: [String], cost: Int = 0, requires: [String] = [])
    /// `permit`: read at decoding; text that is no permit id is refused there (`unknown_permit`).
    case report(permit: PermitID, CallReport)
    /// A long call still running: its permit's deadline moves to `permit_ttl` from now.
    case renew(permit: PermitID)
    /// `generation`: the breaker's generation when the caller decided to call (the fast path's state file).
    case record(breaker: String, CallReport, generation: UInt64? = nil)
    case status(breaker: String?)
    /// `local`: on this sidecar only, though the breaker is fleet-shared.
    case force(breaker: String, mode: ForcedMode, reason: String?, local: Bool = false)
    case reset(breaker: String, local: Bool = false)
    case subscribe(events: [String])
    case ping

    public var op: Op {
        switch self {
        case .hello: return .hello
        case .acquire: return .acquire
        case .route: return .route
        case .report: return .report
        case .renew: return .renew
        case .record: return .record
        case .status: return .status
        case .force: return .force
        case .reset: return .reset
        case .subscribe: return .subscribe
        case .ping: return .ping
        }
    }

    /// The operations, by their wire names.
    public enum Op: String, Sendable, CaseIterable {
        case hello, acquire, route, report, renew, record, status, force, reset, subscribe, ping

        /// Allowed only on the admin socket.
        public var isAdmin: Bool { self == .force || self == .reset }
    }
}

/// A request with its id.
public struct Envelope: Equatable, Sendable {
    public var id: RequestID?
    public var request: Request
    /// False (`"reply": false`, records only): nothing is written back, not
    /// even an error, so a client can send it and go on without reading.
    public var reply: Bool

    public init(id: RequestID?, request: Request, reply: Bool = true) {
        self.id = id
        self.request = request
        self.reply = reply
    }
}

/// Protocol limits a client author needs to know.
public enum WireLimits {
    /// The longest line accepted, newline excluded.
    public static let maxLineBytes = 64 * 1024
    /// Longer `error` texts are cut to this many bytes (on a character boundary) and marked with `…`.
    public static let maxErrorBytes = 1024
    public static let maxNameBytes = 64
    public static let maxIDBytes = 128
    public static let protocolVersion = 1
    /// The largest `cost` or `tokens_used`.
    public static let maxTokens = 1_000_000_000
    /// The longest `timeout_ms` an acquire may carry: one day.
    public static let maxTimeoutMs = 86_400_000
}
