/// What time alone moves, in one pass: the scheduler's work. Between
/// passes the registry keeps `nextWake`, no later than the earliest deadline
/// of any breaker; a decision that brings one closer lowers it and flags the
/// scheduler, so nothing polls.
extension Registry {
    /// Expires overdue leases, moves every breaker's timers on, starts the
    /// probes that are due and offers fleet probe candidates; returns them
    /// with the next deadline.
    mutating func runDue(at now: Timestamp) -> DueWork {
        var work = DueWork()
        for index in breakers.indices {
            advance(index, at: now)
            if breakers[index].policy.probe != nil,
               let (ticket, change) = breakers[index].startProbe(at: now, random: &random) {
                settle(index, change, at: now)
                work.probes.append(ticket)
            }
            if breakers[index].offerCandidacy(at: now) { work.fleetCandidates.append(breakers[index].name) }
            if let due = deadline(of: index, at: now) { work.next = min(work.next ?? due, due) }
        }
        // Every breaker's deadline was just read: this is the earliest, and the scheduler has it.
        nextWake = work.next
        wakeMoved = false
        return work
    }

    /// Only the time-driven transitions of `runDue`, no probes or
    /// candidates: for an embedder without a scheduler (tests, the
    /// simulator) and for breakers handed back from the fleet.
    mutating func tick(at now: Timestamp) {
        for index in breakers.indices { advance(index, at: now) }
    }

    /// Breaker `index`'s time-driven steps: its overdue leases count as
    /// timeouts (oldest first), its open period or silent probe runs out,
    /// a transition-cap hold is told, queued acquires past their timeout are refused.
    private mutating func advance(_ index: Int, at now: Timestamp) {
        while breakers[index].leaseHead >= 0 {
            let slot = breakers[index].leaseHead
            let held = permits[slot]
            guard held.deadline <= now else { break }
            retire(slot)
            events.append(.permitEnded(breaker: breakers[index].name, how: .expired, at: now))
            let ttl = breakers[index].policy.permitTTL
            let change = record(
                index, .timeout, CallReport(outcome: .timeout, latency: ttl, error: "permit expired unreported"),
                generation: held.generation, probe: held.probe, expired: true, at: now
            )
            if let change { transitioned(change, index) }
        }
        if let change = breakers[index].tick(at: now, random: &random) { transitioned(change, index) }
        if let until = breakers[index].takeHoldNotice(at: now) {
            events.append(.heldOpen(breaker: breakers[index].name, until: until, at: now))
        }
        if breakers[index].waiting > 0 {
            expireWaiters(index, at: now)
            breakers[index].waitDeadline = waitQueue.earliestDeadline(of: breakers[index].name)
        }
    }

    /// Breaker `index`'s next deadline: its timers and its oldest lease
    /// (leases are in deadline order, so the head is the earliest).
    func deadline(of index: Int, at now: Timestamp) -> Timestamp? {
        let timers = breakers[index].timerDeadline(at: now)
        let head = breakers[index].leaseHead
        guard head >= 0 else { return timers }
        let lease = permits[head].deadline
        return min(timers ?? lease, lease)
    }

    /// After a decision that may have brought breaker `index`'s deadline
    /// closer. Out of line: rare, and it keeps the decisions that call it small.
    @inline(never)
    mutating func noteDeadline(_ index: Int, at now: Timestamp) {
        if let due = deadline(of: index, at: now) { noteWake(due) }
    }

    /// A probe's permit ended without (necessarily) a transition: in
    /// half-open an active probe falls due once no probe is out.
    mutating func probeSlotFreed(_ index: Int, at now: Timestamp) {
        if breakers[index].state == .halfOpen { noteDeadline(index, at: now) }
    }

    /// Something falls due at `due`: the scheduler is woken if it would sleep past it.
    mutating func noteWake(_ due: Timestamp) {
        if let wake = nextWake, wake <= due { return }
        nextWake = due
        wakeMoved = true
    }
}

/// What one pass of the scheduler found due.
public struct DueWork: Sendable, Equatable {
    /// Probes started: the prober sends each and hands the result to `Engine.finishProbe`.
    public var probes: [ProbeTicket] = []
    /// Fleet mode: gated breakers whose open period ran out, for the fleet to claim the probe lease.
    public var fleetCandidates: [String] = []
    /// When the next pass is due; nil when nothing is until a decision.
    public var next: Timestamp?

    public init() {}
}
