/// A token bucket refilled continuously at `amount / period`, holding at most
/// `amount`. Refill is computed lazily from the time of the last change, so
/// reading or taking is O(1) and needs no timer.
///
/// The level goes below zero only through `charge(_:)` after the fact (a
/// provider counted more tokens than were estimated): that debt is repaid by
/// the refill before anything more is granted. The debt is capped at one
/// period's worth (a level of `-capacity`), so one forged or mistaken report
/// can hold the budget for at most one period.
struct TokenBucket: Sendable, Equatable {
    let capacity: Double
    /// Units per nanosecond.
    let refillRate: Double
    private(set) var level: Double
    private var updatedAt: Timestamp
    /// A 429's Retry-After: nothing refills before then.
    private(set) var pausedUntil: Timestamp?

    init(_ limit: RateLimit, now: Timestamp) {
        self.init(capacity: Double(limit.amount), per: limit.period, level: Double(limit.amount), now: now)
    }

    /// A bucket of any size, fractional or empty (a fleet share), starting at `level`.
    init(capacity: Double, per period: Duration, level: Double, now: Timestamp) {
        self.capacity = max(0, capacity)
        refillRate = self.capacity / Double(max(1, period.nanosecondsClamped))
        self.level = min(self.capacity, level)
        updatedAt = now
    }

    /// This bucket resized to `capacity` (a new fleet share), keeping what is spent and any pause.
    func resized(to capacity: Double, per period: Duration, at now: Timestamp) -> TokenBucket {
        var old = self
        old.refill(at: now)
        var bucket = TokenBucket(capacity: capacity, per: period, level: old.level, now: now)
        bucket.pausedUntil = old.pausedUntil
        return bucket
    }

    /// A bucket for a changed limit that keeps the share already spent.
    init(_ limit: RateLimit, now: Timestamp, keeping old: TokenBucket) {
        self.init(limit, now: now)
        var old = old
        old.refill(at: now)
        level = min(capacity, old.level)
        pausedUntil = old.pausedUntil
    }

    mutating func refill(at now: Timestamp) {
        var from = updatedAt
        if let paused = pausedUntil {
            guard now >= paused else {
                updatedAt = now
                return
            }
            from = max(from, paused)
            pausedUntil = nil
        }
        if now > from { level = min(capacity, level + Double((now - from).nanosecondsClamped) * refillRate) }
        updatedAt = max(updatedAt, now)
    }

    /// What may be taken now (never negative).
    mutating func available(at now: Timestamp) -> Double {
        refill(at: now)
        return max(0, level)
    }

    /// Whether `amount` can be taken now. An amount above the capacity needs a
    /// full bucket (it could never be granted otherwise); an amount of zero
    /// needs a bucket not in debt and not empty.
    mutating func allows(_ amount: Double, at now: Timestamp) -> Bool {
        // A fleet share of nothing grants nothing (not "a full bucket of zero").
        guard capacity > 0 else { return false }
        refill(at: now)
        guard amount > 0 else { return level > 0 }
        return level >= min(amount, capacity)
    }

    /// Takes `amount`; call after `allows`. Only an amount above the capacity
    /// leaves a debt.
    mutating func take(_ amount: Double) { level = max(-capacity, level - amount) }

    /// Adjusts by what the provider actually counted: `delta` more (or, negative, fewer) units than taken.
    mutating func charge(_ delta: Double, at now: Timestamp) {
        refill(at: now)
        level = max(-capacity, min(capacity, level - delta))
    }

    /// Forgets debt and pause (an operator's reset): the bucket starts full.
    mutating func clear(at now: Timestamp) {
        level = capacity
        pausedUntil = nil
        updatedAt = now
    }

    /// Empties the bucket and stops the refill until `until` (a 429 with Retry-After).
    mutating func drain(until: Timestamp, at now: Timestamp) {
        refill(at: now)
        level = min(level, 0)
        pausedUntil = max(pausedUntil ?? until, until)
    }

    /// How long until `amount` could be taken, or nil when it can be now.
    mutating func wait(for amount: Double, at now: Timestamp) -> Duration? {
        guard !allows(amount, at: now) else { return nil }
        // An empty share fills only when a lease grants one: ask again after a typical renewal.
        guard capacity > 0 else { return .seconds(1) }
        let needed = (amount > 0 ? min(amount, capacity) : Double.ulpOfOne) - level
        let start = pausedUntil.map { $0 - now } ?? .zero
        let refillTime = Duration.saturatingNanoseconds((needed / refillRate).rounded(.up))
        return start.nanosecondsClamped > Int64.max - refillTime.nanosecondsClamped ? .nanoseconds(Int64.max) : start + refillTime
    }
}
