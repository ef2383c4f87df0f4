import Synchronization

/// The registry of breakers and chains, the permit table with its leases, and
/// the sink for everything decided. Synchronous and lock-protected: a decision
/// takes the lock, does constant work, and returns; what it decided is handed
/// to the sink after the lock is released, in decision order.
public final class Engine: Sendable {
    let clock: any BreakerClock
    private let sink: any EngineEventSink
    let registry: Mutex<Registry>
    /// Rung when a decision brings the next deadline closer than the
    /// scheduler's sleep (rarely: a first lease, a probe slot, a transition).
    public let deadlineMoved = Doorbell()
    /// Configurations applied since start: background services that cache
    /// what the configuration says (fleet mode's shared set) look at it
    /// without taking the lock.
    private let reloads = Atomic<Int>(0)

    /// - Parameter seed: seeds the jitter generator; fix it for reproducible runs.
    public init(
        configuration: EngineConfiguration,
        clock: any BreakerClock = SystemClock(),
        sink: any EngineEventSink = NoEventSink(),
        seed: UInt64 = UInt64.random(in: .min ... .max)
    ) throws(EngineError) {
        try configuration.validate()
        self.clock = clock
        self.sink = sink
        self.registry = Mutex(Registry(configuration: configuration, now: clock.now(), seed: seed))
    }

    // MARK: Decisions

    /// May the app call `breaker` now? When allowed, the permit must be
    /// reported (or released) before its deadline. `cost` is the call's
    /// estimated tokens, for a token budget. Never waits.
    /// `owner` tags the permit with its connection, which is held to its cap.
    public func acquire(_ breaker: String, cost: Int = 0, owner: PermitOwner? = nil) throws(EngineError) -> Decision {
        try decide { (registry: inout Registry) throws(EngineError) -> Decision in
            try registry.acquire(
                registry.index(of: breaker), cost: cost, owner: registry.ownerEntry(owner), at: clock.now()
            )
        }
    }

    /// Like `acquire`, but a breaker at its `max_in_flight` with a queue
    /// queues the request: `waiter` then receives the answer once, from
    /// whichever thread frees a slot or ticks past the timeout, unless
    /// `cancelWait` withdraws it first.
    /// `waitAtMost` shortens the queue's timeout for this acquire (the client's own deadline).
    public func acquire(
        _ breaker: String, cost: Int = 0, owner: PermitOwner? = nil, orWait waiter: any QueueWaiter, waitAtMost: Duration? = nil
    ) throws(EngineError) -> AcquireResult {
        try decide { (registry: inout Registry) throws(EngineError) -> AcquireResult in
            try registry.acquireOrWait(
                registry.index(of: breaker), cost: cost, owner: owner, at: clock.now(), waiter: waiter, waitAtMost: waitAtMost
            )
        }
    }

    /// Withdraws a queued acquire (its client went away). False when it was
    /// already answered: its waiter has been told or is about to be.
    public func cancelWait(_ ticket: WaitTicket) -> Bool {
        decide { registry in registry.cancelWait(ticket, at: clock.now()) }
    }

    /// Refuses a queued acquire whose deadline has passed, at once rather than
    /// at the next `tick` (the server sets a timer for each wait). Does
    /// nothing if it was answered, or the deadline is not yet reached.
    public func expireWait(_ ticket: WaitTicket) {
        decide { registry in registry.expireWait(ticket, at: clock.now()) }
    }

    /// Takes a permit from `chain`: the member its strategy picks, or the
    /// first other that admits, passing over those in `exclude` (the app
    /// already tried them) and those lacking a capability in `requires`. A
    /// breaker over a budget is passed over like an open one; route never queues.
    public func route(
        _ chain: String, exclude: [String] = [], requires: [String] = [], cost: Int = 0, owner: PermitOwner? = nil
    ) throws(EngineError) -> RouteDecision {
        try decide { (registry: inout Registry) throws(EngineError) -> RouteDecision in
            let ownerIndex = try registry.ownerEntry(owner)
            return try registry.route(chain, exclude: exclude, requires: requires, cost: cost, owner: ownerIndex, at: clock.now())
        }
    }

    /// Reports how a permitted call went; returns the breaker's state after it.
    @discardableResult
    public func report(_ permit: PermitID, _ report: CallReport) throws(EngineError) -> BreakerState {
        try decide { (registry: inout Registry) throws(EngineError) -> BreakerState in
            try registry.report(permit, report, at: clock.now())
        }
    }

    /// Reports a call made without a permit (apps that only report, and the
    /// clients' fast path). `generation` is the one the caller saw when it
    /// decided to call: from an older generation the call counts in the
    /// statistics but cannot move the breaker, as a stale permit's report.
    /// Like `report`, it serves waiters: a record that opens the breaker tells them at once.
    @discardableResult
    public func record(_ breaker: String, _ report: CallReport, generation: UInt64? = nil) throws(EngineError) -> BreakerState {
        try decide { (registry: inout Registry) throws(EngineError) -> BreakerState in
            try registry.record(registry.index(of: breaker), report, generation: generation, at: clock.now())
        }
    }

    /// Ends a permit without a result: it frees its slot and counts nothing
    /// against the provider.
    public func release(_ permit: PermitID, _ reason: ReleaseReason) throws(EngineError) {
        try decide { (registry: inout Registry) throws(EngineError) in
            try registry.release(permit, reason, at: clock.now())
        }
    }

    /// Keeps a running call's permit alive: its new deadline, `permit_ttl`
    /// from now. `unknownPermit` once it was reported, released or expired.
    @discardableResult
    public func renew(_ permit: PermitID) throws(EngineError) -> Timestamp {
        try decide { (registry: inout Registry) throws(EngineError) -> Timestamp in
            try registry.renew(permit, at: clock.now())
        }
    }

    /// A new holder of permits (a connection) that may hold at most `maxPermits` at once.
    public func openOwner(maxPermits: Int) -> PermitOwner {
        registry.withLock { $0.owners.open(limit: maxPermits) }
    }

    /// Releases up to `atMost` of `owner`'s permits as abandoned (its client
    /// went away); true once none are left and the owner is closed. The
    /// caller repeats, yielding between calls, so a connection that held
    /// many permits never stalls others for long.
    public func releaseOwned(by owner: PermitOwner, atMost: Int = 256) -> Bool {
        decide { registry in registry.releaseOwned(by: owner, atMost: atMost, at: clock.now()) }
    }

    /// Runs one decision under the lock, then, outside it, hands queued
    /// acquires it answered to their waiters and delivers pending events.
    /// Only one thread delivers events at a time, taking them in decision
    /// order; one that finds another delivering leaves its events to it. The
    /// two event buffers circulate, so nothing is allocated once they have
    /// grown, and nothing at all unless someone was waiting.
    @inline(__always)
    func decide<Result, Failure: Error>(
        _ body: (inout Registry) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        // Buffers only ever change hands by swapping, so none is copied (or allocated) on the way.
        var batch: [EngineEvent] = []
        var ready: [WaitDelivery]?
        var delivering = false
        var wake = false
        let result = try registry.withLock { (registry: inout Registry) throws(Failure) -> Result in
            // A request that throws leaves any events it made queued: the next decision delivers them.
            let result = try body(&registry)
            if !registry.ready.isEmpty {
                ready = registry.ready
                registry.ready = []
            }
            if registry.wakeMoved {
                registry.wakeMoved = false
                wake = true
            }
            delivering = registry.takeEventsToDeliver(into: &batch)
            return result
        }
        if wake { deadlineMoved.ring() }
        if let ready { for delivery in ready { delivery.waiter.answer(delivery.decision) } }
        if delivering { deliver(&batch) }
        return result
    }

    /// Delivers `batch`, then whatever decisions added meanwhile, until none is left.
    private func deliver(_ batch: inout [EngineEvent]) {
        repeat {
            sink.receive(batch)
            batch.removeAll(keepingCapacity: true)
        } while registry.withLock({ $0.nextEventsToDeliver(swapping: &batch) })
    }

    // MARK: Operators

    /// `local` keeps a fleet-shared breaker's change on this sidecar (`ctl force --local`).
    @discardableResult
    public func force(_ breaker: String, _ mode: ForcedMode, local: Bool = false) throws(EngineError) -> BreakerState {
        try operate(breaker, .force(mode), local: local)
    }

    /// Closes `breaker` and forgets its statistics, backoff and budget pauses.
    @discardableResult
    public func reset(_ breaker: String, local: Bool = false) throws(EngineError) -> BreakerState {
        try operate(breaker, .reset, local: local)
    }

    private func operate(_ breaker: String, _ action: OperatorAction, local: Bool) throws(EngineError) -> BreakerState {
        try decide { (registry: inout Registry) throws(EngineError) -> BreakerState in
            try registry.operate(registry.index(of: breaker), action, local: local, at: clock.now())
        }
    }

    /// Replaces the configuration (SIGHUP): kept breakers keep their state.
    public func apply(_ configuration: EngineConfiguration) throws(EngineError) -> ReloadSummary {
        try configuration.validate()
        let summary = decide { registry in
            let summary = registry.apply(configuration, at: clock.now())
            registry.postAll()
            return summary
        }
        reloads.add(1, ordering: .releasing)
        return summary
    }

    /// How many configurations were applied since start (see `apply`).
    public var reloadCount: Int { reloads.load(ordering: .acquiring) }

    // MARK: Reading

    /// Reads the engine's inner state under its lock (tests check invariants with it).
    func inspect<T>(_ body: (inout Registry) -> T) -> T { registry.withLock { body(&$0) } }

    public var breakerNames: [String] { registry.withLock { $0.breakers.map(\.name) } }
    public var chainNames: [String] { registry.withLock { $0.chainNames } }

    public func chain(_ name: String) -> [String]? {
        registry.withLock { registry in registry.chains[name].map { $0.members.map { registry.breakers[$0].name } } }
    }

    /// Every chain's members and strategy, in configured order (for `hello`).
    public var chainDescriptions: [(name: String, members: [String], strategy: String)] {
        registry.withLock { registry in
            registry.chainNames.compactMap { name in
                registry.chains[name].map { (name, $0.members.map { registry.breakers[$0].name }, $0.strategy.name) }
            }
        }
    }

    public var permitsInFlight: Int { registry.withLock { $0.permits.inFlight } }

    /// Permits `owner` holds now (0 once it is closed).
    public func permitsHeld(by owner: PermitOwner) -> Int {
        registry.withLock { registry in registry.owners.find(owner).map { registry.owners[$0].held } ?? 0 }
    }

    /// How long until `deadline` on the engine's clock (negative once past):
    /// timers set for the engine's deadlines read no other clock.
    public func timeUntil(_ deadline: Timestamp) -> Duration { deadline - clock.now() }

    public func isOutstanding(_ permit: PermitID) -> Bool { registry.withLock { $0.permits.find(permit) != nil } }

    /// One breaker, or all of them in configured order.
    public func snapshot(_ breaker: String? = nil) throws(EngineError) -> [BreakerSnapshot] {
        try registry.withLock { (registry: inout Registry) throws(EngineError) -> [BreakerSnapshot] in
            let now = clock.now()
            let indices = try breaker.map { name throws(EngineError) in [try registry.index(of: name)] }
                ?? Array(registry.breakers.indices)
            return indices.map { registry.snapshot($0, at: now) }
        }
    }
}
