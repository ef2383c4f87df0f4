/// Limits one breaker applies before any call is made, shared by every client
/// of the sidecar: a cap on calls in flight and token-bucket budgets. All off
/// by default.
public struct BudgetPolicy: Sendable, Equatable {
    /// Permits outstanding at once; `nil` means no cap.
    public var maxInFlight: Int?
    /// With a cap: `acquire` over it waits here instead of being refused.
    public var queue: QueuePolicy?
    /// Requests per period.
    public var rate: RateLimit?
    /// Provider-counted tokens per period (`cost` on acquire, `tokens_used` on report).
    public var tokens: RateLimit?
    /// Limits shared by the whole fleet (`scope: fleet`): this sidecar enforces
    /// the share it leases, starting from none until the first lease.
    public var fleetScoped: FleetScopedBudgets

    public init(
        maxInFlight: Int? = nil, queue: QueuePolicy? = nil, rate: RateLimit? = nil, tokens: RateLimit? = nil,
        fleetScoped: FleetScopedBudgets = []
    ) {
        self.maxInFlight = maxInFlight
        self.queue = queue
        self.rate = rate
        self.tokens = tokens
        self.fleetScoped = fleetScoped
    }

    public var isEmpty: Bool { maxInFlight == nil && rate == nil && tokens == nil }
}

/// Which of a breaker's limits are fleet-wide.
public struct FleetScopedBudgets: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let maxInFlight = FleetScopedBudgets(rawValue: 1)
    public static let rate = FleetScopedBudgets(rawValue: 2)
    public static let tokens = FleetScopedBudgets(rawValue: 4)
}

/// A bounded FIFO of acquires waiting for a free slot under `max_in_flight`.
public struct QueuePolicy: Sendable, Equatable {
    /// Waiters at most; an acquire finding the queue full is refused at once.
    public var max: Int
    /// A waiter not served by then is refused.
    public var timeout: Duration

    public init(max: Int, timeout: Duration) {
        self.max = max
        self.timeout = timeout
    }
}

/// `amount` units per `period`, refilled continuously; a full bucket holds `amount`.
public struct RateLimit: Sendable, Equatable {
    public var amount: Int
    public var period: Duration

    public init(amount: Int, per period: Duration) {
        self.amount = amount
        self.period = period
    }
}

/// Why an acquire, or a step of a route, was refused.
public enum RejectionReason: String, Sendable, CaseIterable {
    /// The breaker is open, forced open, or half-open with its probe slots taken.
    case open
    /// `max_in_flight` permits are out (and the queue, if any, was full or timed out).
    case concurrency
    /// The request-rate budget is spent.
    case rate
    /// The token budget is spent.
    case tokens
}
