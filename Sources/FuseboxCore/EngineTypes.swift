/// A named breaker and its policy.
public struct BreakerDefinition: Sendable, Equatable {
    public var name: String
    public var policy: BreakerPolicy

    public init(name: String, policy: BreakerPolicy = .default) {
        self.name = name
        self.policy = policy
    }
}

/// A fallback chain: its breakers, and how a route picks among them.
public struct ChainDefinition: Sendable, Equatable {
    public var name: String
    public var breakers: [String]
    public var strategy: RouteStrategy

    public init(name: String, breakers: [String], strategy: RouteStrategy = .ordered) {
        self.name = name
        self.breakers = breakers
        self.strategy = strategy
    }
}

/// What the engine runs: its breakers and chains, in the order configured.
public struct EngineConfiguration: Sendable, Equatable {
    public var breakers: [BreakerDefinition]
    public var chains: [ChainDefinition]

    public init(breakers: [BreakerDefinition], chains: [ChainDefinition] = []) {
        self.breakers = breakers
        self.chains = chains
    }

    /// Structural checks the engine relies on; the YAML loader reports the same
    /// problems earlier, with file and line.
    public func validate() throws(EngineError) {
        var seen = Set<String>()
        for breaker in breakers where !seen.insert(breaker.name).inserted {
            throw .invalidConfiguration("breaker \"\(breaker.name)\" is defined twice")
        }
        var chainNames = Set<String>()
        for chain in chains {
            guard chainNames.insert(chain.name).inserted else {
                throw .invalidConfiguration("chain \"\(chain.name)\" is defined twice")
            }
            guard !chain.breakers.isEmpty else { throw .invalidConfiguration("chain \"\(chain.name)\" is empty") }
            for member in chain.breakers where !seen.contains(member) {
                throw .invalidConfiguration("chain \"\(chain.name)\" names unknown breaker \"\(member)\"")
            }
            guard Set(chain.breakers).count == chain.breakers.count else {
                throw .invalidConfiguration("chain \"\(chain.name)\" names a breaker twice")
            }
        }
    }
}

public enum EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownBreaker(String)
    case unknownChain(String)
    /// Never issued, already reported, released or expired.
    case unknownPermit(String)
    /// Every permit slot is in use (16,777,216 outstanding).
    case tooManyPermits
    /// The connection holds its `max_permits_per_connection`.
    case permitLimit(Int)
    /// A permit owner that was already closed.
    case unknownOwner
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .unknownBreaker(let name): return "no breaker named \"\(name)\""
        case .unknownChain(let name): return "no chain named \"\(name)\""
        case .unknownPermit(let id): return "permit \"\(id)\" is not outstanding (never issued, already reported, or expired)"
        case .tooManyPermits: return "too many permits outstanding"
        case .permitLimit(let limit):
            return "this connection holds \(limit) unreported permits, its limit (max_permits_per_connection)"
        case .unknownOwner: return "the connection's permits were already released"
        case .invalidConfiguration(let message): return message
        }
    }
}

/// The answer to `acquire`.
public struct Decision: Sendable, Equatable {
    public var allowed: Bool
    /// The breaker's state after the decision.
    public var state: BreakerState
    public var permit: Permit?
    /// When refused: how long until the breaker may admit again, when known.
    public var retryIn: Duration?
    /// When refused: which limit refused.
    public var reason: RejectionReason?
    /// For an acquire that queued: how long it waited.
    public var waited: Duration?

    public init(
        allowed: Bool, state: BreakerState, permit: Permit? = nil, retryIn: Duration? = nil,
        reason: RejectionReason? = nil, waited: Duration? = nil
    ) {
        self.allowed = allowed
        self.state = state
        self.permit = permit
        self.retryIn = retryIn
        self.reason = reason
        self.waited = waited
    }
}

/// An acquire that may wait: answered now, or queued and answered later
/// through the `QueueWaiter` it was given.
public enum AcquireResult: Sendable, Equatable {
    case decided(Decision)
    case queued(WaitTicket)
}

/// A breaker `route` passed over, and why.
public struct SkippedBreaker: Sendable, Equatable {
    public var breaker: String
    public var state: BreakerState
    public var retryIn: Duration?
    public var reason: SkipReason
}

/// Why `route` passed a breaker over: a refusal, or a capability the request `requires`.
public enum SkipReason: String, Sendable, Equatable {
    case open
    case concurrency
    case rate
    case tokens
    case capability

    init(_ refusal: RejectionReason) {
        switch refusal {
        case .open: self = .open
        case .concurrency: self = .concurrency
        case .rate: self = .rate
        case .tokens: self = .tokens
        }
    }
}

/// The answer to `route`.
public struct RouteDecision: Sendable, Equatable {
    public var allowed: Bool
    public var breaker: String?
    public var permit: Permit?
    public var skipped: [SkippedBreaker]
    /// Which strategy chose `breaker`, and on what figure (when allowed).
    public var choice: RouteChoice?
}

/// One breaker as `status` shows it.
public struct BreakerSnapshot: Sendable, Equatable {
    public var name: String
    public var state: BreakerState
    public var generation: UInt64
    public var stateSince: Timestamp
    public var openUntil: Timestamp?
    public var consecutiveFailures: Int
    public var window: HealthTotals
    public var failedProbes: Int
    public var probesInFlight: Int
    public var permitsInFlight: Int
    public var lastError: String?
    public var lastStatus: Int?
    public var policy: BreakerPolicy
    /// Acquires waiting in the breaker's queue.
    public var queued: Int
    /// Requests the rate budget would grant now; nil without one.
    public var rateAvailable: Double?
    /// Tokens the token budget would grant now; nil without one.
    public var tokensAvailable: Double?
}

/// What a reload changed.
public struct ReloadSummary: Sendable, Equatable {
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [String] = []
    /// Changed breakers whose window shape changed, so their statistics restarted.
    public var windowsReset: [String] = []
}
