/// Calls, failures and slow calls in a window, as read at one moment.
public struct HealthTotals: Sendable, Equatable {
    public var calls: Int
    public var failures: Int
    public var slow: Int

    public init(calls: Int = 0, failures: Int = 0, slow: Int = 0) {
        self.calls = calls
        self.failures = failures
        self.slow = slow
    }

    public var failureRate: Double { calls == 0 ? 0 : Double(failures) / Double(calls) }
    public var slowCallRate: Double { calls == 0 ? 0 : Double(slow) / Double(calls) }
}

/// The statistics behind the rate rules: the last N calls (a ring) or the
/// last T seconds (a ring of time buckets). Both record and read in constant
/// time: running totals are kept, and an evicted slot is subtracted as it goes.
struct HealthWindow: Sendable {
    private enum Kind: Sendable { case none, count, time }
    private static let failureBit: UInt8 = 1
    private static let slowBit: UInt8 = 2

    private let kind: Kind
    private var totals = HealthTotals()

    // Count window: one byte of flags per call.
    private var ring: [UInt8] = []
    private var ringNext = 0

    // Time window: buckets of `bucketWidth`, indexed by epoch modulo count.
    private var buckets: [Bucket] = []
    private var bucketWidth: Int64 = 1
    private var latestEpoch: Int64 = .min

    private struct Bucket: Sendable {
        var epoch: Int64 = .min
        var calls: Int32 = 0
        var failures: Int32 = 0
        var slow: Int32 = 0
    }

    init(_ policy: WindowPolicy?) {
        switch policy {
        case nil:
            kind = .none
        case .count(let size):
            kind = .count
            ring = []
            ring.reserveCapacity(size)
            ringCapacity = size
        case .time(let seconds, let count):
            kind = .time
            buckets = Array(repeating: Bucket(), count: count)
            bucketWidth = max(1, Int64(seconds) * 1_000_000_000 / Int64(count))
        }
    }

    private var ringCapacity = 0

    mutating func record(failure: Bool, slow: Bool, at now: Timestamp) {
        switch kind {
        case .none:
            return
        case .count:
            let flags = (failure ? Self.failureBit : 0) | (slow ? Self.slowBit : 0)
            if ring.count < ringCapacity {
                ring.append(flags)
            } else {
                let evicted = ring[ringNext]
                totals.calls -= 1
                if evicted & Self.failureBit != 0 { totals.failures -= 1 }
                if evicted & Self.slowBit != 0 { totals.slow -= 1 }
                ring[ringNext] = flags
                ringNext = (ringNext + 1) % ringCapacity
            }
        case .time:
            let epoch = advance(to: now)
            let slot = Int(epoch % Int64(buckets.count))
            buckets[slot].calls += 1
            if failure { buckets[slot].failures += 1 }
            if slow { buckets[slot].slow += 1 }
        }
        totals.calls += 1
        if failure { totals.failures += 1 }
        if slow { totals.slow += 1 }
    }

    mutating func read(at now: Timestamp) -> HealthTotals {
        if kind == .time { _ = advance(to: now) }
        return totals
    }

    mutating func reset() {
        totals = HealthTotals()
        ring.removeAll(keepingCapacity: true)
        ringNext = 0
        for i in buckets.indices { buckets[i] = Bucket() }
        latestEpoch = .min
    }

    /// Moves the time window forward to `now`, dropping the buckets that fell
    /// out of it. At most `buckets.count` steps, whatever the gap. A clock that
    /// steps back records into the newest bucket.
    private mutating func advance(to now: Timestamp) -> Int64 {
        let epoch = max(0, now.nanoseconds) / bucketWidth
        guard epoch > latestEpoch else { return latestEpoch }
        let count = Int64(buckets.count)
        let first = latestEpoch == .min ? epoch - count + 1 : max(latestEpoch + 1, epoch - count + 1)
        var e = first
        while e <= epoch {
            let slot = Int(((e % count) + count) % count)
            let old = buckets[slot]
            if old.epoch != .min {
                totals.calls -= Int(old.calls)
                totals.failures -= Int(old.failures)
                totals.slow -= Int(old.slow)
            }
            buckets[slot] = Bucket(epoch: e)
            e += 1
        }
        latestEpoch = epoch
        return epoch
    }
}
