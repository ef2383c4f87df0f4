/// This sidecar's leased shares of fleet-scoped limits.
struct FleetShares: Sendable, Equatable {
    var maxInFlight = 0
    var rate = 0.0
    var tokens = 0.0
}

/// One breaker's budgets at run time: its policy and the buckets behind it.
/// The concurrency count itself is the breaker's lease list; this type only
/// compares against it.
struct Budget: Sendable {
    private(set) var policy: BudgetPolicy
    private var rate: TokenBucket?
    private var tokens: TokenBucket?
    /// Fleet-scoped limits hold this sidecar's leased share instead of the whole (none before the first lease).
    private(set) var shares = FleetShares()

    init(_ policy: BudgetPolicy, now: Timestamp) {
        self.policy = policy
        rate = policy.rate.map { TokenBucket($0, now: now) }
        tokens = policy.tokens.map { TokenBucket($0, now: now) }
        applyShares(at: now)
    }

    /// The concurrency cap in force: the fleet share when scoped.
    var maxInFlight: Int? {
        guard let cap = policy.maxInFlight else { return nil }
        return policy.fleetScoped.contains(.maxInFlight) ? min(cap, shares.maxInFlight) : cap
    }

    /// Sets this sidecar's share of a fleet-scoped limit (clamped to the limit).
    mutating func setShare(_ kind: FleetScopedBudgets, _ share: Double, at now: Timestamp) {
        let share = share.isFinite ? max(0, share) : 0
        if kind == .maxInFlight { shares.maxInFlight = Int(min(share, Double(policy.maxInFlight ?? 0))) }
        if kind == .rate { shares.rate = min(share, Double(policy.rate?.amount ?? 0)) }
        if kind == .tokens { shares.tokens = min(share, Double(policy.tokens?.amount ?? 0)) }
        applyShares(at: now)
    }

    /// Resizes the fleet-scoped buckets to their shares, keeping their level:
    /// the first (a share of none) empties a full bucket, so a joining sidecar never bursts.
    private mutating func applyShares(at now: Timestamp) {
        if policy.fleetScoped.contains(.rate), let limit = policy.rate, let bucket = rate, bucket.capacity != shares.rate {
            rate = bucket.resized(to: shares.rate, per: limit.period, at: now)
        }
        if policy.fleetScoped.contains(.tokens), let limit = policy.tokens, let bucket = tokens, bucket.capacity != shares.tokens {
            tokens = bucket.resized(to: shares.tokens, per: limit.period, at: now)
        }
    }

    /// The first limit that refuses a call costing `cost` tokens, and how long
    /// until it may not, when that is known. `waiting` acquires already queued
    /// keep their place: a newcomer does not pass them.
    mutating func refusal(inFlight: Int, waiting: Int, cost: Int, at now: Timestamp) -> (RejectionReason, Duration?)? {
        if let cap = maxInFlight, inFlight >= cap || waiting > 0 { return (.concurrency, nil) }
        if rate?.allows(1, at: now) == false { return (.rate, rate?.wait(for: 1, at: now)) }
        if tokens?.allows(Double(cost), at: now) == false { return (.tokens, tokens?.wait(for: Double(cost), at: now)) }
        return nil
    }

    /// Spends one request and `cost` tokens; call after `refusal` said nil.
    mutating func spend(cost: Int) {
        rate?.take(1)
        tokens?.take(Double(cost))
    }

    /// Reconciles the token budget with what the provider counted.
    mutating func settle(cost: Int, used: Int, at now: Timestamp) {
        tokens?.charge(Double(used - cost), at: now)
    }

    /// A 429 with Retry-After: nothing more is sent until `until`.
    mutating func rateLimited(until: Timestamp, at now: Timestamp) {
        rate?.drain(until: until, at: now)
        tokens?.drain(until: until, at: now)
    }

    /// An operator's reset: pauses and debts are forgotten, every bucket full.
    mutating func clear(at now: Timestamp) {
        rate?.clear(at: now)
        tokens?.clear(at: now)
    }

    /// Takes a reloaded policy; a bucket whose limit is unchanged keeps its level.
    mutating func adopt(_ new: BudgetPolicy, at now: Timestamp) {
        guard new != policy else { return }
        rate = Self.bucket(new.rate, old: rate, oldLimit: policy.rate, at: now)
        tokens = Self.bucket(new.tokens, old: tokens, oldLimit: policy.tokens, at: now)
        policy = new
        // A reloaded limit keeps the share leased so far until the next renewal.
        shares.rate = min(shares.rate, Double(new.rate?.amount ?? 0))
        shares.tokens = min(shares.tokens, Double(new.tokens?.amount ?? 0))
        applyShares(at: now)
    }

    private static func bucket(_ limit: RateLimit?, old: TokenBucket?, oldLimit: RateLimit?, at now: Timestamp) -> TokenBucket? {
        guard let limit else { return nil }
        guard let old else { return TokenBucket(limit, now: now) }
        return limit == oldLimit ? old : TokenBucket(limit, now: now, keeping: old)
    }

    mutating func rateAvailable(at now: Timestamp) -> Double? { rate?.available(at: now) }
    /// The raw levels (negative in debt) and when each bucket's pause ends, for invariant checks.
    var levels: (rate: Double?, tokens: Double?) { (rate?.level, tokens?.level) }
    var pausedUntil: Timestamp? { [rate?.pausedUntil, tokens?.pausedUntil].compactMap { $0 }.max() }
    mutating func tokensAvailable(at now: Timestamp) -> Double? { tokens?.available(at: now) }
}
