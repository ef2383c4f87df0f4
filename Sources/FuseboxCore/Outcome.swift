/// How a call went, as the breaker counts it.
public enum Outcome: String, Sendable, CaseIterable, Hashable {
    case success
    case failure
    case timeout
    /// Not the provider's fault (a 404, a bad request): counted nowhere.
    case ignored
    /// The app gave up before an answer: frees the permit, counted nowhere.
    case cancelled

    /// Whether it counts against the provider.
    public var isFailure: Bool { self == .failure || self == .timeout }
}

/// What kind of error the app saw when no HTTP status came back.
public enum ErrorKind: String, Sendable, CaseIterable, Hashable {
    case timeout
    case connection
}

/// Everything a client may say about one call. Either `outcome` or `status`
/// (or `errorKind`) must be set; the classification rules fill in the rest.
public struct CallReport: Sendable, Equatable {
    public var outcome: Outcome?
    public var status: Int?
    public var errorKind: ErrorKind?
    public var latency: Duration?
    public var error: String?
    public var retryAfter: Duration?
    /// Tokens the provider counted for the call; reconciles the token budget.
    public var tokensUsed: Int?
    /// How long the first byte of the answer took (streams); a metric only, never a trip rule.
    public var timeToFirstByte: Duration?

    public init(
        outcome: Outcome? = nil,
        status: Int? = nil,
        errorKind: ErrorKind? = nil,
        latency: Duration? = nil,
        error: String? = nil,
        retryAfter: Duration? = nil,
        tokensUsed: Int? = nil
    ) {
        self.outcome = outcome
        self.status = status
        self.errorKind = errorKind
        self.latency = latency
        self.error = error
        self.retryAfter = retryAfter
        self.tokensUsed = tokensUsed
    }

    public static func success(latency: Duration? = nil) -> CallReport {
        CallReport(outcome: .success, latency: latency)
    }

    public static func failure(status: Int? = nil, error: String? = nil, latency: Duration? = nil) -> CallReport {
        CallReport(outcome: .failure, status: status, latency: latency, error: error)
    }
}

/// One entry of a `classify.failure` or `classify.ignore` list.
public enum StatusRule: Sendable, Hashable, CustomStringConvertible {
    case status(Int)
    /// `4xx` is `.statusClass(4)`.
    case statusClass(Int)
    case timeout
    case connection

    func matches(status: Int) -> Bool {
        switch self {
        case .status(let s): return s == status
        case .statusClass(let c): return status / 100 == c
        case .timeout, .connection: return false
        }
    }

    func matches(kind: ErrorKind) -> Bool {
        switch (self, kind) {
        case (.timeout, .timeout), (.connection, .connection): return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .status(let s): return String(s)
        case .statusClass(let c): return "\(c)xx"
        case .timeout: return "timeout"
        case .connection: return "connection"
        }
    }
}

/// Turns a status or an error kind into an `Outcome`. The failure list is
/// checked first, then the ignore list; a status in neither is a success below
/// 400 and a failure from 400 up.
public struct ClassificationPolicy: Sendable, Equatable {
    public var failure: [StatusRule]
    public var ignore: [StatusRule]

    public init(
        failure: [StatusRule] = [.status(429), .statusClass(5), .timeout, .connection],
        ignore: [StatusRule] = [.statusClass(4)]
    ) {
        self.failure = failure
        self.ignore = ignore
    }

    public func outcome(of report: CallReport) -> Outcome {
        if let outcome = report.outcome {
            // An explicit timeout can still be ignored by configuration.
            if outcome == .timeout, !failure.contains(.timeout), ignore.contains(.timeout) { return .ignored }
            return outcome
        }
        if let status = report.status {
            if failure.contains(where: { $0.matches(status: status) }) { return .failure }
            if ignore.contains(where: { $0.matches(status: status) }) { return .ignored }
            return status < 400 ? .success : .failure
        }
        if let kind = report.errorKind {
            if failure.contains(where: { $0.matches(kind: kind) }) { return kind == .timeout ? .timeout : .failure }
            if ignore.contains(where: { $0.matches(kind: kind) }) { return .ignored }
            return kind == .timeout ? .timeout : .failure
        }
        return .failure
    }
}
