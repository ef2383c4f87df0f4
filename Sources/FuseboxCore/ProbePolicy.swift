/// A breaker's own health check (`probe:`): what to send, and when. The
/// engine reads only the schedule and the mode; the HTTP fields are carried
/// for the prober, so a reload that changes them reaches it like any policy.
public struct ProbePolicy: Sendable, Equatable {
    public var url: String
    public var method: String
    public var headers: [ProbeHeader]
    public var body: String?
    /// Statuses that count as healthy; empty means any 2xx.
    public var expectStatus: [StatusRule]
    /// A probe not answered in this long is cut off and counts as a timeout.
    public var timeout: Duration
    /// With active probes, an open period lasts at most this long: backoff
    /// protects users, and no user pays for an active probe. `nil`: the
    /// open period alone decides.
    public var interval: Duration?
    public var mode: ProbeMode
    /// Also probe a closed breaker this often (an idle fallback's health is
    /// known before traffic needs it); a failure opens it with reason `probe`.
    public var closedInterval: Duration?

    public init(
        url: String, method: String = "GET", headers: [ProbeHeader] = [], body: String? = nil,
        expectStatus: [StatusRule] = [], timeout: Duration = .seconds(5), interval: Duration? = nil,
        mode: ProbeMode = .active, closedInterval: Duration? = nil
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.expectStatus = expectStatus
        self.timeout = timeout
        self.interval = interval
        self.mode = mode
        self.closedInterval = closedInterval
    }

    public var isActive: Bool { mode == .active }

    /// Whether `status` is a healthy answer.
    public func expects(_ status: Int) -> Bool {
        expectStatus.isEmpty ? (200..<300).contains(status) : expectStatus.contains { $0.matches(status: status) }
    }
}

/// `active`: the sidecar sends the probe and users wait for its verdict.
/// `passive`: a user's request is the half-open probe (Fusebox's behaviour without `probe:`).
public enum ProbeMode: String, Sendable, CaseIterable {
    case active
    case passive
}

/// One probe header. `template` is what the file says (`Bearer ${OPENAI_API_KEY}`)
/// and is the only form ever shown or stored; `value` is what is sent.
public struct ProbeHeader: Sendable, Equatable {
    public var name: String
    public var template: String
    public var value: String

    public init(name: String, template: String, value: String) {
        self.name = name
        self.template = template
        self.value = value
    }
}

/// How one probe went, as transitions, metrics and the store record it.
public struct ProbeResult: Sendable, Equatable {
    public var outcome: ProbeOutcome
    public var latency: Duration
    public var status: Int?
    /// Why it failed, when no status says it (connection refused, TLS…).
    public var error: String?

    public init(outcome: ProbeOutcome, latency: Duration, status: Int? = nil, error: String? = nil) {
        self.outcome = outcome
        self.latency = latency
        self.status = status
        self.error = error
    }

    /// `success: 200 in 12 ms`, `failure: 401 in 8 ms`, `timeout after 500 ms`.
    public var summary: String {
        let ms = latency.millisecondsClamped
        switch outcome {
        case .timeout: return "timeout after \(ms) ms"
        case .success, .failure:
            let what = status.map(String.init) ?? error ?? "no answer"
            return "\(outcome.rawValue): \(what) in \(ms) ms"
        }
    }
}

public enum ProbeOutcome: String, Sendable, CaseIterable {
    case success
    case failure
    case timeout
}

/// A probe the engine has started: the prober sends it and hands back the result.
public struct ProbeTicket: Sendable, Equatable {
    public var breaker: String
    /// The breaker's generation when it started; a result from an older one changes nothing.
    public var generation: UInt64
    /// A check of a closed breaker (`closed_interval`) rather than the half-open probe.
    public var closedCheck: Bool
    public var policy: ProbePolicy
}
