/// Everything the engine's lock protects: breakers, chains, the permit table
/// and the jitter generator. Each method is one decision's worth of O(1) work.
struct Registry: Sendable {
    var breakers: [Breaker] = []
    var byName: [String: Int] = [:]
    var chains: [String: ChainRoute] = [:]
    var chainNames: [String] = []
    var permits = PermitSlab()
    var owners = PermitOwners()
    var random: SplitMix64
    var waitQueue = WaitQueue()
    /// Queued acquires answered during the current decision, handed to their
    /// clients once the lock is released.
    var ready: [WaitDelivery] = []
    /// What decisions have told and nobody has delivered yet, in decision order.
    var events: [EngineEvent] = []
    /// An emptied buffer kept for the next swap, so delivering allocates nothing.
    var spareEvents: [EngineEvent] = []
    /// Whether some thread is delivering events now (only one does, in order).
    var deliveringEvents = false
    /// Where states are posted for the clients' fast path, if anywhere.
    var board: (any BreakerStateBoard)?
    /// No later than the earliest deadline of any breaker (see `runDue`);
    /// nil when nothing is due until a decision. Starts at once: a closed
    /// check is due at start.
    var nextWake: Timestamp?
    /// A decision moved `nextWake` earlier: the scheduler is woken to sleep less.
    var wakeMoved = false

    init(configuration: EngineConfiguration, now: Timestamp, seed: UInt64) {
        random = SplitMix64(seed: seed)
        nextWake = now
        for definition in configuration.breakers {
            byName[definition.name] = breakers.count
            breakers.append(Breaker(name: definition.name, policy: definition.policy, now: now))
        }
        setChains(configuration.chains)
    }

    /// At the end of a decision: when there are events and no other thread
    /// is delivering, this one becomes the deliverer and takes them into
    /// `batch` (true); otherwise they stay queued for the deliverer (false).
    mutating func takeEventsToDeliver(into batch: inout [EngineEvent]) -> Bool {
        guard !events.isEmpty, !deliveringEvents else { return false }
        deliveringEvents = true
        swap(&events, &batch)
        swap(&events, &spareEvents)
        return true
    }

    /// After a batch (`batch` now emptied): true with the events queued
    /// meanwhile swapped into it, or false, the deliverer stepping down and
    /// the emptied buffer kept as the spare.
    mutating func nextEventsToDeliver(swapping batch: inout [EngineEvent]) -> Bool {
        guard !events.isEmpty else {
            deliveringEvents = false
            swap(&spareEvents, &batch)
            return false
        }
        swap(&events, &batch)
        return true
    }

    func index(of name: String) throws(EngineError) -> Int {
        guard let index = byName[name] else { throw .unknownBreaker(name) }
        return index
    }

    // MARK: Permits

    /// The breaker's state decides first, then its budgets. `queued` is set
    /// for the acquire at the head of the breaker's queue, which may pass the
    /// others still waiting.
    mutating func acquire(
        _ index: Int, cost: Int = 0, owner: Int32 = -1, queued: Bool = false, at now: Timestamp
    ) throws(EngineError) -> Decision {
        let (admission, change) = breakers[index].admit(at: now, random: &random)
        if let change { transitioned(change, index) }
        if !admission.allowed, let until = breakers[index].takeHoldNotice(at: now) {
            events.append(.heldOpen(breaker: breakers[index].name, until: until, at: now))
        }
        guard admission.allowed else { return refuse(index, .open, retryIn: admission.retryIn, at: now) }
        let generation = breakers[index].generation
        if let (reason, retryIn) = breakers[index].budget.refusal(
            inFlight: breakers[index].permitsInFlight, waiting: queued ? 0 : breakers[index].waiting, cost: cost, at: now
        ) {
            breakers[index].release(generation: generation, probe: admission.probe, at: now)
            return refuse(index, reason, retryIn: retryIn, at: now)
        }
        guard let (slot, id) = permits.allocate() else {
            breakers[index].release(generation: generation, probe: admission.probe, at: now)
            throw .tooManyPermits
        }
        breakers[index].budget.spend(cost: cost)
        let deadline = now + breakers[index].policy.permitTTL
        permits[slot].breaker = Int32(index)
        permits[slot].cost = UInt32(clamping: cost)
        permits[slot].probe = admission.probe
        permits[slot].generation = generation
        permits[slot].issuedAt = now
        permits[slot].deadline = deadline
        linkLease(slot, to: index)
        if owner >= 0 { linkOwner(slot, to: owner) }
        // Only a first lease or a probe slot can bring the breaker's deadline closer.
        if admission.probe { noteDeadline(index, at: now) } else if breakers[index].leaseHead == slot { noteWake(deadline) }
        let permit = Permit(
            id: id, breaker: breakers[index].name, generation: generation, probe: admission.probe, deadline: deadline,
            ttl: breakers[index].policy.permitTTL
        )
        return Decision(allowed: true, state: breakers[index].state, permit: permit)
    }

    mutating func refuse(
        _ index: Int, _ reason: RejectionReason, retryIn: Duration?, at now: Timestamp
    ) -> Decision {
        events.append(.rejected(breaker: breakers[index].name, state: breakers[index].state, reason: reason, at: now))
        return Decision(allowed: false, state: breakers[index].state, retryIn: retryIn, reason: reason)
    }

    /// Ends a permit with a reported result.
    mutating func report(_ id: PermitID, _ report: CallReport, at now: Timestamp)
        throws(EngineError) -> BreakerState
    {
        guard let slot = permits.find(id) else { throw .unknownPermit(id.description) }
        let held = permits[slot]
        let index = Int(held.breaker)
        retire(slot)
        var report = report
        if report.latency == nil { report.latency = now - held.issuedAt }
        let outcome = breakers[index].policy.classify.outcome(of: report)
        // A reported permit's end is told by its `recorded` event; only a cancel is told apart.
        if outcome == .cancelled {
            breakers[index].release(generation: held.generation, probe: held.probe, at: now)
            events.append(.permitEnded(breaker: breakers[index].name, how: .cancelled, at: now))
        }
        let change = record(
            index, outcome, report, generation: held.generation, probe: held.probe, expired: false,
            cost: Int(held.cost), at: now
        )
        settle(index, change, at: now)
        if held.probe { probeSlotFreed(index, at: now) }
        return breakers[index].state
    }

    /// A call still running: its permit's deadline moves to `permit_ttl` from
    /// now, so `permit_ttl` bounds a client's silence rather than the call's
    /// length. Moved to the back of its breaker's lease list, which stays in
    /// deadline order (every deadline there is `permit_ttl` after its last word).
    mutating func renew(_ id: PermitID, at now: Timestamp) throws(EngineError) -> Timestamp {
        guard let slot = permits.find(id) else { throw .unknownPermit(id.description) }
        let index = Int(permits[slot].breaker)
        let deadline = now + breakers[index].policy.permitTTL
        unlinkLease(slot)
        permits[slot].deadline = deadline
        linkLease(slot, to: index)
        return deadline
    }

    /// Ends a permit without a result (the client went away, or gave up).
    mutating func release(_ id: PermitID, _ reason: ReleaseReason, at now: Timestamp)
        throws(EngineError)
    {
        guard let slot = permits.find(id) else { throw .unknownPermit(id.description) }
        let held = permits[slot]
        let index = Int(held.breaker)
        retire(slot)
        breakers[index].release(generation: held.generation, probe: held.probe, at: now)
        events.append(.permitEnded(breaker: breakers[index].name, how: reason == .abandoned ? .abandoned : .cancelled, at: now))
        settle(index, nil, at: now)
        if held.probe { probeSlotFreed(index, at: now) }
    }

    /// Counts one result and lets the breaker and its budgets act on it.
    /// `cost` is what the permit charged to the token budget. Returns the
    /// transition it made, for the caller to settle.
    mutating func record(
        _ index: Int, _ outcome: Outcome, _ report: CallReport, generation: UInt64, probe: Bool, expired: Bool,
        cost: Int = 0, at now: Timestamp
    ) -> Transition? {
        if let used = report.tokensUsed { breakers[index].budget.settle(cost: cost, used: used, at: now) }
        // A 429 speaks for the whole host: every worker stops until Retry-After.
        // Capped like the open period, so a forged Retry-After cannot pause the budget for days.
        if report.status == 429, let retryAfter = report.retryAfter {
            let pause = min(retryAfter, breakers[index].policy.open.retryAfterCap)
            breakers[index].budget.rateLimited(until: now + pause, at: now)
            if let until = breakers[index].budget.pausedUntil {
                events.append(.paused(breaker: breakers[index].name, until: until, at: now))
            }
        }
        let slow = breakers[index].policy.trip.slowCall.map { policy in
            report.latency.map { $0 >= policy.threshold } ?? false
        } ?? false
        if outcome == .success, let latency = report.latency { breakers[index].latency.add(latency, at: now) }
        if outcome != .cancelled {
            var call = RecordedCall(
                breaker: breakers[index].name, outcome: outcome, status: report.status, latency: report.latency,
                error: report.error, slow: slow, stale: generation != breakers[index].generation, at: now
            )
            call.timeToFirstByte = report.timeToFirstByte
            events.append(.recorded(call))
        }
        return breakers[index].record(
            outcome, report: report, slow: slow, generation: generation, probe: probe, expired: expired, at: now,
            random: &random
        )
    }

    // MARK: Owners

    /// The owner's entry, checked to be open and under its cap.
    func ownerEntry(_ owner: PermitOwner?) throws(EngineError) -> Int32 {
        guard let owner else { return -1 }
        guard let index = owners.find(owner) else { throw .unknownOwner }
        let entry = owners[index]
        guard entry.held < entry.limit else { throw .permitLimit(entry.limit) }
        return index
    }

    /// Releases up to `limit` of the owner's permits as abandoned; true (and
    /// the owner closed) once it holds none.
    mutating func releaseOwned(by owner: PermitOwner, atMost limit: Int, at now: Timestamp) -> Bool {
        guard let entry = owners.find(owner) else { return true }
        var released = 0
        while owners[entry].head >= 0, released < limit {
            let slot = owners[entry].head
            let held = permits[slot]
            let index = Int(held.breaker)
            retire(slot)
            breakers[index].release(generation: held.generation, probe: held.probe, at: now)
            events.append(.permitEnded(breaker: breakers[index].name, how: .abandoned, at: now))
            settle(index, nil, at: now)
            if held.probe { probeSlotFreed(index, at: now) }
            released += 1
        }
        guard owners[entry].head < 0 else { return false }
        owners.close(entry)
        return true
    }

    // MARK: Lease lists

    /// Ends a permit's life in the table: out of its breaker's and owner's lists, slot freed.
    mutating func retire(_ slot: Int32) {
        unlinkLease(slot)
        unlinkOwner(slot)
        permits.free(slot)
    }

    private mutating func linkOwner(_ slot: Int32, to owner: Int32) {
        let head = owners[owner].head
        permits[slot].owner = owner
        permits[slot].ownerPrevious = -1
        permits[slot].ownerNext = head
        if head >= 0 { permits[head].ownerPrevious = slot }
        owners[owner].head = slot
        owners[owner].held += 1
    }

    private mutating func unlinkOwner(_ slot: Int32) {
        let held = permits[slot]
        guard held.owner >= 0 else { return }
        if held.ownerPrevious >= 0 { permits[held.ownerPrevious].ownerNext = held.ownerNext } else { owners[held.owner].head = held.ownerNext }
        if held.ownerNext >= 0 { permits[held.ownerNext].ownerPrevious = held.ownerPrevious }
        owners[held.owner].held -= 1
    }

    private mutating func linkLease(_ slot: Int32, to index: Int) {
        let tail = breakers[index].leaseTail
        permits[slot].previous = tail
        permits[slot].next = -1
        if tail >= 0 { permits[tail].next = slot } else { breakers[index].leaseHead = slot }
        breakers[index].leaseTail = slot
        breakers[index].permitsInFlight += 1
    }

    private mutating func unlinkLease(_ slot: Int32) {
        let held = permits[slot]
        let index = Int(held.breaker)
        if held.previous >= 0 { permits[held.previous].next = held.next } else { breakers[index].leaseHead = held.next }
        if held.next >= 0 { permits[held.next].previous = held.previous } else { breakers[index].leaseTail = held.previous }
        breakers[index].permitsInFlight -= 1
    }

    /// The slots in breaker `index`'s lease list, oldest first.
    func leases(of index: Int) -> [Int32] {
        var result: [Int32] = []
        var slot = breakers[index].leaseHead
        while slot >= 0 {
            result.append(slot)
            slot = permits[slot].next
        }
        return result
    }

    // MARK: Reload

    /// Swaps in a new configuration. Kept breakers keep state and statistics;
    /// permits of removed breakers are released as abandoned.
    mutating func apply(_ configuration: EngineConfiguration, at now: Timestamp)
        -> ReloadSummary
    {
        var summary = ReloadSummary()
        let wanted = Set(configuration.breakers.map(\.name))
        for index in breakers.indices where !wanted.contains(breakers[index].name) {
            summary.removed.append(breakers[index].name)
            refuseAllWaiters(index, at: now)
            for slot in leases(of: index) {
                retire(slot)
                events.append(.permitEnded(breaker: breakers[index].name, how: .abandoned, at: now))
            }
        }
        var next: [Breaker] = []
        var nextByName: [String: Int] = [:]
        for definition in configuration.breakers {
            let newIndex = next.count
            nextByName[definition.name] = newIndex
            guard let old = byName[definition.name] else {
                summary.added.append(definition.name)
                next.append(Breaker(name: definition.name, policy: definition.policy, now: now))
                continue
            }
            var breaker = breakers[old]
            let change = breaker.adopt(definition.policy, at: now)
            if change.changed { summary.changed.append(definition.name) }
            if change.windowReset { summary.windowsReset.append(definition.name) }
            for slot in leases(of: old) { permits[slot].breaker = Int32(newIndex) }
            if let change = breaker.reevaluate(at: now, random: &random) { events.append(.transitioned(change)) }
            next.append(breaker)
        }
        breakers = next
        byName = nextByName
        setChains(configuration.chains)
        for index in breakers.indices where breakers[index].waiting > 0 { serveWaiters(index, at: now) }
        // New policies move deadlines every which way (a closed check added, a shorter `max_wait`).
        noteWake(now)
        return summary
    }
}
