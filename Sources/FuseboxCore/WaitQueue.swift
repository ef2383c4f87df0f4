/// Names one queued acquire, so its connection can withdraw it or time it out.
public struct WaitTicket: Hashable, Sendable {
    public let rawValue: UInt64
    /// When the wait times out (the engine's clock).
    public let deadline: Timestamp
}

/// Who waits for a queued acquire's answer: in the server, one object per
/// connection. The engine calls `answer` once per wait, outside its lock,
/// from whichever thread freed a slot or timed the wait out.
public protocol QueueWaiter: AnyObject, Sendable {
    func answer(_ decision: Decision)
}

/// Acquires waiting for a free slot under a breaker's `max_in_flight`, first
/// in, first out, per breaker. Only the queueing path touches this type: a
/// breaker with nobody waiting costs a decision nothing here.
struct WaitQueue: Sendable {
    struct Waiter: Sendable {
        var breaker: String
        var cost: Int
        var owner: PermitOwner?
        var enqueuedAt: Timestamp
        var deadline: Timestamp
        var waiter: any QueueWaiter
    }

    /// One breaker's line: tickets in arrival order; withdrawn ones are
    /// skipped when they reach the front.
    private struct Line: Sendable {
        var tickets: [UInt64] = []
        var head = 0
        /// Withdrawn tickets are dropped when the line grows to this, so
        /// clients that queue and leave cannot grow it without bound.
        var compactAt = 64
    }

    private var waiters: [UInt64: Waiter] = [:]
    private var lines: [String: Line] = [:]
    private var serial: UInt64 = 0

    mutating func enqueue(_ waiter: Waiter) -> WaitTicket {
        serial &+= 1
        waiters[serial] = waiter
        var line = lines[waiter.breaker] ?? Line()
        line.tickets.append(serial)
        if line.tickets.count >= line.compactAt { compact(&line) }
        lines[waiter.breaker] = line
        return WaitTicket(rawValue: serial, deadline: waiter.deadline)
    }

    /// The longest-waiting acquire of `breaker`, taken out of the queue.
    mutating func popFirst(of breaker: String) -> Waiter? {
        guard var line = lines[breaker] else { return nil }
        defer { lines[breaker] = line.head == line.tickets.count ? nil : line }
        while line.head < line.tickets.count {
            let ticket = line.tickets[line.head]
            line.head += 1
            if let waiter = waiters.removeValue(forKey: ticket) {
                if line.head * 2 > line.compactAt { compact(&line) }
                return waiter
            }
        }
        return nil
    }

    private func compact(_ line: inout Line) {
        line.tickets = line.tickets[line.head...].filter { waiters[$0] != nil }
        line.head = 0
        line.compactAt = max(64, line.tickets.count * 2)
    }

    /// Withdraws one acquire; nil when it was already answered.
    mutating func remove(_ ticket: WaitTicket) -> Waiter? { waiters.removeValue(forKey: ticket.rawValue) }

    /// The acquire still waiting under `ticket`, if any.
    func waiter(_ ticket: WaitTicket) -> Waiter? { waiters[ticket.rawValue] }

    /// Takes out every waiter of `breaker` whose deadline is at or before `now`.
    mutating func removeExpired(of breaker: String, at now: Timestamp) -> [Waiter] {
        guard var line = lines[breaker] else { return [] }
        var expired: [Waiter] = []
        for ticket in line.tickets[line.head...] {
            if let waiter = waiters[ticket], waiter.deadline <= now {
                waiters[ticket] = nil
                expired.append(waiter)
            }
        }
        compact(&line)
        lines[breaker] = line.tickets.isEmpty ? nil : line
        return expired
    }

    /// The earliest timeout among `breaker`'s waiters (nil: none waits).
    func earliestDeadline(of breaker: String) -> Timestamp? {
        guard let line = lines[breaker] else { return nil }
        return line.tickets[line.head...].compactMap { waiters[$0]?.deadline }.min()
    }

    /// Takes out every waiter of `breaker` (the breaker was removed).
    mutating func removeAll(of breaker: String) -> [Waiter] {
        var all: [Waiter] = []
        while let waiter = popFirst(of: breaker) { all.append(waiter) }
        return all
    }
}
