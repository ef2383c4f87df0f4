/// How a chain picks the member it tries first. Whatever the pick, a member
/// that refuses (open, over budget, lacking a capability) is passed over and
/// the rest are tried in the chain's listed order.
public enum RouteStrategy: Sendable, Equatable {
    /// The listed order: the first member that admits.
    case ordered
    /// The lowest recent latency (a time-weighted average of successful calls).
    case fastest(FastestPolicy)
    /// The lowest `cost` figure; members without one come last, in listed order.
    case cheapest
    /// A static split (a canary): each route picks a member with probability weight / total.
    case weighted([String: Int])

    public var name: String {
        switch self {
        case .ordered: return "ordered"
        case .fastest: return "fastest"
        case .cheapest: return "cheapest"
        case .weighted: return "weighted"
        }
    }
}

/// `strategy: { fastest: { margin: 0.2, window: 10s } }`.
public struct FastestPolicy: Sendable, Equatable {
    /// A member takes over only when its average is below the preferred one's
    /// by more than this share, so equal providers do not trade traffic on noise.
    public var margin: Double
    /// The averages' time constant: a latency change shows in about this long.
    /// Also the least time between two switches (so at most 60 s / window a
    /// minute), and how old a member's figure may get before one route
    /// refreshes it.
    public var window: Duration

    public init(margin: Double = 0.2, window: Duration = .seconds(10)) {
        self.margin = margin
        self.window = window
    }
}

/// `cost: { input_per_1k: 0.5, output_per_1k: 1.5 }` or `cost: { weight: 3 }`.
public struct CallCost: Sendable, Equatable {
    public var inputPer1k: Double?
    public var outputPer1k: Double?
    public var weight: Double?

    public init(inputPer1k: Double? = nil, outputPer1k: Double? = nil, weight: Double? = nil) {
        self.inputPer1k = inputPer1k
        self.outputPer1k = outputPer1k
        self.weight = weight
    }

    /// What `cheapest` compares: a thousand tokens in and a thousand out, or the weight.
    public var figure: Double { weight ?? ((inputPer1k ?? 0) + (outputPer1k ?? 0)) }
}

/// Why a route answered with the member it did.
public struct RouteChoice: Sendable, Equatable {
    public enum Basis: String, Sendable {
        /// First in the listed order that admitted (`ordered`, or a fallback).
        case order
        /// The preferred member by latency.
        case latency
        /// A member whose latency figure was old or missing got this call to renew it.
        case refresh
        case cost
        case weight
    }

    public var strategy: String
    public var basis: Basis
    /// The figure used: milliseconds for latency, the cost figure, or the weight.
    public var figure: Double?

    public init(strategy: String, basis: Basis, figure: Double? = nil) {
        self.strategy = strategy
        self.basis = basis
        self.figure = figure
    }
}
