/// The answer to "may I call now?" from one breaker.
struct Admission {
    var allowed: Bool
    var probe: Bool
    var retryIn: Duration?
}

/// One circuit breaker's state machine. Not thread-safe on its own: the
/// `Engine` owns every breaker and mutates it under its lock.
///
/// The state is computed lazily from `(state, openUntil, now)` as in gobreaker,
/// and `generation` bumps on every transition so that a report for a permit
/// issued before the latest transition can update statistics but never drive a
/// transition.
struct Breaker: Sendable {
    let name: String
    private(set) var policy: BreakerPolicy
    private var rules: TripRules

    private(set) var state: BreakerState = .closed
    private(set) var generation: UInt64 = 0
    private(set) var openUntil: Timestamp?
    private(set) var stateSince: Timestamp

    private(set) var consecutiveFailures = 0
    private var health: HealthWindow
    /// Probes that failed in a row: the backoff exponent (a fleet peer's count is adopted).
    var failedProbes = 0
    /// Fleet mode: an open period that ran out waits for the fleet's probe
    /// lease instead of going half-open here (one probe fleet-wide). See `probeAuthority`.
    var probeGated = false

    private(set) var probesInFlight = 0
    private var probeSuccesses = 0
    /// Since when a probe has been outstanding without an answer.
    private(set) var probeSilentSince: Timestamp?

    private(set) var lastError: String?
    private(set) var lastStatus: Int?

    /// Permits of this breaker not yet reported, oldest first (slots in the
    /// engine's `PermitSlab`); lets expiry look at the oldest one only.
    var leaseHead: Int32 = -1
    var leaseTail: Int32 = -1
    var permitsInFlight = 0
    /// Concurrency cap and rate budgets; checked after the state allows a call.
    var budget: Budget
    /// Acquires in the engine's `WaitQueue` for this breaker.
    var waiting = 0
    /// At `max_transitions_per_minute`, an open breaker stays open.
    private(set) var rateLimit: TransitionRateLimit
    /// Recent latency, for `fastest` chains.
    var latency = LatencyAverage()
    /// A `closed_interval` check is out, and when the last one went.
    private(set) var closedCheckOut = false
    private(set) var lastClosedCheck: Timestamp?
    /// Fleet mode: when a due breaker may next be offered for the fleet's probe (see `offerCandidacy`).
    var nextCandidacy: Timestamp?
    /// No later than the earliest timeout among this breaker's queued acquires (see `timerDeadline`).
    var waitDeadline: Timestamp?

    init(name: String, policy: BreakerPolicy, now: Timestamp) {
        self.name = name
        self.policy = policy
        self.rules = TripRules(policy: policy.trip)
        self.health = HealthWindow(policy.trip.window)
        self.stateSince = now
        self.budget = Budget(policy.budget, now: now)
        self.rateLimit = TransitionRateLimit(limit: policy.maxTransitionsPerMinute)
    }

    /// States in which the breaker itself lets calls through, so only a budget
    /// can hold one back (and a queued acquire waits for the budget alone).
    var admitsFreely: Bool { state == .closed || state == .metricsOnly || state == .disabled }

    // MARK: Decisions

    /// Decides one acquire; an open breaker whose time is up turns half-open
    /// first (the returned transition).
    mutating func admit(at now: Timestamp, random: inout SplitMix64) -> (Admission, Transition?) {
        switch state {
        case .closed, .disabled, .metricsOnly:
            return (Admission(allowed: true, probe: false, retryIn: nil), nil)
        case .forcedOpen:
            return (refusal(retryIn: nil), nil)
        case .open:
            guard openPeriodOver(at: now) else { return (refusal(retryIn: openUntil.map { $0 - now }), nil) }
            // Over: who goes half-open depends on who probes.
            switch probeAuthority {
            case .users:
                let change = transition(to: .halfOpen, reason: .openElapsed, at: now, random: &random)
                return (admitProbe(at: now), change)
            case .prober(let probe): return (refusal(retryIn: probe.timeout), nil)
            case .fleetLease: return (refusal(retryIn: Self.leaseWait), nil)
            }
        case .halfOpen:
            // Once half-open (however it got there), the sidecar's prober sends the probe if it has one.
            if let probe = activeProbe {
                let retry = probeSilentSince.map { max(.zero, ($0 + probe.timeout) - now) } ?? probe.timeout
                return (refusal(retryIn: retry), nil)
            }
            return (admitProbe(at: now), nil)
        }
    }

    /// The probe policy when the sidecar probes itself (`mode: active`).
    var activeProbe: ProbePolicy? { policy.probe.flatMap { $0.isActive ? $0 : nil } }

    /// Who ends this breaker's open periods: fleet mode's gate, else its policy.
    var probeAuthority: ProbeAuthority {
        if probeGated { return .fleetLease }
        return activeProbe.map { .prober($0) } ?? .users
    }

    /// Whether the breaker is open and its open period has run out. At the
    /// transition cap the period is lengthened instead, and is not over.
    mutating func openPeriodOver(at now: Timestamp) -> Bool {
        guard state == .open else { return false }
        if let until = openUntil, now < until { return false }
        return holdOpen(at: now) == nil
    }

    private func refusal(retryIn: Duration?) -> Admission { Admission(allowed: false, probe: false, retryIn: retryIn) }

    private mutating func admitProbe(at now: Timestamp) -> Admission {
        guard probesInFlight < policy.halfOpen.probes else {
            let retry = probeSilentSince.map { max(.zero, ($0 + policy.halfOpen.maxWait) - now) }
            return refusal(retryIn: retry)
        }
        probesInFlight += 1
        if probeSilentSince == nil { probeSilentSince = now }
        return Admission(allowed: true, probe: true, retryIn: nil)
    }

    /// Records one call's result. `generation` is the one the permit was issued
    /// in (the current one for permit-less `record`); `probe` whether it held a
    /// half-open slot; `expired` when the lease ran out rather than a report.
    mutating func record(
        _ outcome: Outcome, report: CallReport, slow: Bool = false, generation permitGeneration: UInt64,
        probe: Bool, expired: Bool = false, at now: Timestamp, random: inout SplitMix64
    ) -> Transition? {
        let fresh = permitGeneration == generation
        if outcome.isFailure {
            if let error = report.error { lastError = error }
            if let status = report.status { lastStatus = status }
        }
        if state == .disabled { return nil }

        // A provider's Retry-After is information whatever the generation: it
        // may lengthen an open period, but only a fresh report opens.
        let retryAfter = policy.open.honorRetryAfter && outcome.isFailure
            ? report.retryAfter.map { min($0, policy.open.retryAfterCap) } : nil
        if state == .open, let retryAfter, let until = openUntil, now + retryAfter > until {
            openUntil = now + retryAfter
        }

        guard outcome == .success || outcome.isFailure else {
            // Ignored or cancelled: counted nowhere, but a probe's slot frees.
            if state == .halfOpen, fresh, probe { releaseProbe(at: now) }
            return nil
        }

        switch state {
        case .closed, .metricsOnly:
            health.record(failure: outcome.isFailure, slow: slow, at: now)
            guard fresh else { return nil }
            consecutiveFailures = outcome.isFailure ? consecutiveFailures + 1 : 0
            guard state == .closed else { return nil }
            let reason = outcome.isFailure || slow
                ? rules.reason(consecutiveFailures: consecutiveFailures, window: health.read(at: now))
                : nil
            if let reason {
                return transition(to: .open, reason: reason, at: now, random: &random, retryAfter: retryAfter)
            } else if let retryAfter {
                return transition(to: .open, reason: .retryAfter, at: now, random: &random, retryAfter: retryAfter)
            }
        case .halfOpen:
            // Permit-less `record` calls act as probes: an app that only reports
            // would otherwise leave the breaker half-open for ever.
            guard fresh else { return nil }
            if probe { probesInFlight = max(0, probesInFlight - 1) }
            if outcome.isFailure {
                failedProbes = min(failedProbes + 1, OpenPolicy.maxFailedProbes)
                let reason: TransitionReason = expired ? .probeTimeout : .probeFailed
                return transition(to: .open, reason: reason, at: now, random: &random, retryAfter: retryAfter)
            } else {
                probeSuccesses += 1
                if probeSuccesses >= policy.halfOpen.successesToClose {
                    return transition(to: .closed, reason: .probeSucceeded, at: now, random: &random)
                } else {
                    probeSilentSince = probesInFlight > 0 ? now : nil
                }
            }
        case .open, .forcedOpen, .disabled:
            return nil
        }
        return nil
    }

    /// Frees a half-open slot without counting anything (abandoned, cancelled).
    mutating func release(generation permitGeneration: UInt64, probe: Bool, at now: Timestamp) {
        if state == .halfOpen, probe, permitGeneration == generation { releaseProbe(at: now) }
    }

    private mutating func releaseProbe(at now: Timestamp) {
        probesInFlight = max(0, probesInFlight - 1)
        if probesInFlight == 0 { probeSilentSince = nil }
    }

    /// Time-driven transitions, so they happen (and are logged) without traffic.
    mutating func tick(at now: Timestamp, random: inout SplitMix64) -> Transition? {
        switch state {
        case .open:
            if probeAuthority == .users, openPeriodOver(at: now) {
                return transition(to: .halfOpen, reason: .openElapsed, at: now, random: &random)
            }
        case .halfOpen:
            if let since = probeSilentSince, now >= since + policy.halfOpen.maxWait {
                failedProbes = min(failedProbes + 1, OpenPolicy.maxFailedProbes)
                return transition(to: .open, reason: .probeTimeout, at: now, random: &random)
            }
        case .closed, .forcedOpen, .disabled, .metricsOnly:
            return nil
        }
        return nil
    }

    /// At the transition cap an open period that ran out is lengthened until
    /// the cap frees, rather than cycling on; leaving open is the only step
    /// gated, so an outage still opens at once. Returns the new end.
    private mutating func holdOpen(at now: Timestamp) -> Timestamp? {
        guard let until = rateLimit.heldUntil(at: now) else { return nil }
        openUntil = until
        return until
    }

    /// Whether the breaker is held open by the cap and nobody has been told
    /// yet; telling marks it told until the next transition.
    mutating func takeHoldNotice(at now: Timestamp) -> Timestamp? {
        guard state == .open, !rateLimit.announced, let until = openUntil, rateLimit.heldUntil(at: now) != nil else { return nil }
        rateLimit.announced = true
        return until
    }

    // MARK: Active probes

    /// Starts this breaker's probe if one is due: an open period that ran
    /// out turns half-open with the probe slot taken by the sidecar (users
    /// are refused meanwhile), a half-open breaker with no probe out (a
    /// fleet lease won) takes it, and a closed breaker is checked every
    /// `closed_interval`. Returns the generation the result must match.
    mutating func startProbe(at now: Timestamp, random: inout SplitMix64) -> (ticket: ProbeTicket, change: Transition?)? {
        guard let probe = policy.probe else { return nil }
        switch state {
        case .open:
            guard case .prober = probeAuthority, openPeriodOver(at: now) else { return nil }
            let change = transition(to: .halfOpen, reason: .openElapsed, at: now, random: &random)
            takeProbeSlot(at: now)
            return (ProbeTicket(breaker: name, generation: generation, closedCheck: false, policy: probe), change)
        case .halfOpen:
            guard probe.isActive, probesInFlight == 0 else { return nil }
            takeProbeSlot(at: now)
            return (ProbeTicket(breaker: name, generation: generation, closedCheck: false, policy: probe), nil)
        case .closed:
            guard let every = probe.closedInterval, !closedCheckOut else { return nil }
            if let last = lastClosedCheck, now - last < every { return nil }
            closedCheckOut = true
            lastClosedCheck = now
            return (ProbeTicket(breaker: name, generation: generation, closedCheck: true, policy: probe), nil)
        case .forcedOpen, .disabled, .metricsOnly:
            return nil
        }
    }

    private mutating func takeProbeSlot(at now: Timestamp) {
        probesInFlight += 1
        probeSilentSince = now
    }

    /// The sidecar's probe answered. In half-open it decides exactly as a
    /// user's probe would; a failed check of a closed breaker opens it with
    /// reason `probe`. A result from an earlier generation changes nothing.
    mutating func finishProbe(_ ticket: ProbeTicket, _ result: ProbeResult, at now: Timestamp, random: inout SplitMix64) -> Transition? {
        if ticket.closedCheck { closedCheckOut = false }
        guard ticket.generation == generation else { return nil }
        if result.outcome != .success {
            lastError = "probe " + result.summary
            if let status = result.status { lastStatus = status }
        }
        var change: Transition?
        if ticket.closedCheck {
            guard state == .closed, result.outcome != .success else { return nil }
            change = transition(to: .open, reason: .probe, at: now, random: &random)
        } else {
            guard state == .halfOpen else { return nil }
            let outcome: Outcome = result.outcome == .success ? .success : .failure
            let report = CallReport(status: result.status, latency: result.latency)
            change = record(outcome, report: report, generation: ticket.generation, probe: true,
                            expired: result.outcome == .timeout, at: now, random: &random)
        }
        change?.probe = result
        return change
    }

    // MARK: Fleet

    /// What a refused acquire is told to wait while the fleet's probe is out.
    static let leaseWait = Duration.milliseconds(250)

    /// Whether this breaker's open period has run out while gated: it may claim the fleet's probe.
    mutating func probeDue(at now: Timestamp) -> Bool {
        probeAuthority == .fleetLease && openPeriodOver(at: now)
    }

    /// This sidecar won the fleet's probe lease: half-open, here only.
    mutating func beginFleetProbe(at now: Timestamp, random: inout SplitMix64) -> Transition? {
        guard probeDue(at: now) else { return nil }
        return transition(to: .halfOpen, reason: .openElapsed, at: now, random: &random)
    }

    /// A peer's decision. An opening takes the peer's `open_until` (an open
    /// breaker keeps the later end); a close or a forced state applies as is.
    /// Forced and disabled states here are an operator's and stay.
    mutating func applyFleet(_ state: FleetState, at now: Timestamp, random: inout SplitMix64) -> Transition? {
        switch state {
        case .open(let peerUntil, let probesFailed):
            // A peer's numbers move this breaker only as far as a local event could: the backoff's
            // count within its bound, and an opening no longer than Retry-After may hold one from now.
            failedProbes = min(max(0, probesFailed), OpenPolicy.maxFailedProbes)
            let until = min(peerUntil, now + policy.open.retryAfterCap)
            switch self.state {
            case .closed, .halfOpen:
                var change = transition(to: .open, reason: .fleet, at: now, random: &random)
                openUntil = until
                change.openUntil = until
                return change
            case .open:
                if let current = openUntil, until > current { openUntil = until }
                return nil
            case .forcedOpen, .disabled, .metricsOnly:
                return nil
            }
        case .closed:
            guard self.state == .open || self.state == .halfOpen else { return nil }
            return transition(to: .closed, reason: .fleet, at: now, random: &random)
        case .forced(let mode):
            guard var change = force(mode, at: now, random: &random) else { return nil }
            change.reason = .fleet
            return change
        case .reset:
            guard var change = reset(at: now, random: &random) else { return nil }
            change.reason = .fleet
            return change
        }
    }

    /// The state recorded before a restart: an opening resumes with its end
    /// (bounded as a local opening is: no longer than the backoff's cap or
    /// Retry-After's from now), a force stays, and the generation continues
    /// from the stored one. A breaker the configuration makes disabled or
    /// metrics-only keeps what the configuration says.
    mutating func restore(_ saved: SavedState, at now: Timestamp, random: inout SplitMix64) -> Transition? {
        guard state == .closed, let mode = saved.mode else { return nil }
        generation = max(generation, saved.generation)
        switch mode {
        case .open(let savedUntil):
            let until = min(max(savedUntil, now), now + max(policy.open.backoffMax, policy.open.retryAfterCap))
            var change = transition(to: .open, reason: .restored, at: now, random: &random)
            openUntil = until
            change.openUntil = until
            return change
        case .forced(let mode):
            guard var change = force(mode, at: now, random: &random) else { return nil }
            change.reason = .restored
            return change
        }
    }

    /// Peers' failures in a row (fleet mode), counted as if seen here: a
    /// closed breaker trips on the fleet's count, not only its own.
    mutating func recordRemote(resets: Bool, failures: Int, at now: Timestamp, random: inout SplitMix64) -> Transition? {
        guard state == .closed || state == .metricsOnly else { return nil }
        if resets { consecutiveFailures = 0 }
        // Both terms are at most 10^9, so the sum cannot overflow whatever a peer sent.
        consecutiveFailures = min(1_000_000_000, consecutiveFailures + min(max(0, failures), 1_000_000_000))
        guard state == .closed, failures > 0,
              let reason = rules.reason(consecutiveFailures: consecutiveFailures, window: health.read(at: now))
        else { return nil }
        return transition(to: .open, reason: reason, at: now, random: &random)
    }

    // MARK: Operators

    mutating func force(_ mode: ForcedMode, at now: Timestamp, random: inout SplitMix64) -> Transition? {
        let target: BreakerState
        switch mode {
        case .open: target = .forcedOpen
        case .closed: target = .closed
        case .disabled: target = .disabled
        case .metricsOnly: target = .metricsOnly
        case .auto:
            guard [.forcedOpen, .disabled, .metricsOnly].contains(state) else { return nil }
            target = .closed
        }
        guard target != state else { return nil }
        return transition(to: target, reason: .forced, at: now, random: &random)
    }

    /// Closes and forgets statistics, backoff, budget pauses and token debt.
    mutating func reset(at now: Timestamp, random: inout SplitMix64) -> Transition? {
        failedProbes = 0
        budget.clear(at: now)
        guard state != .closed else {
            clearStatistics()
            return nil
        }
        return transition(to: .closed, reason: .reset, at: now, random: &random)
    }

    /// Takes a new policy (config reload) keeping state and statistics where
    /// they still fit. A new window shape cannot keep the old window's counts;
    /// a half-open breaker with fewer probe slots than probes out keeps them
    /// until they report.
    mutating func adopt(_ newPolicy: BreakerPolicy, at now: Timestamp) -> (windowReset: Bool, changed: Bool) {
        guard newPolicy != policy else { return (false, false) }
        let windowReset = newPolicy.trip.window != policy.trip.window
        budget.adopt(newPolicy.budget, at: now)
        policy = newPolicy
        rules = TripRules(policy: newPolicy.trip)
        if newPolicy.maxTransitionsPerMinute != rateLimit.limit {
            rateLimit = TransitionRateLimit(limit: newPolicy.maxTransitionsPerMinute)
        }
        if windowReset { health = HealthWindow(newPolicy.trip.window) }
        if newPolicy.probe?.closedInterval == nil { closedCheckOut = false }
        return (windowReset, true)
    }

    /// After a reload: a closed breaker whose new rules already hold opens.
    mutating func reevaluate(at now: Timestamp, random: inout SplitMix64) -> Transition? {
        guard state == .closed,
              rules.reason(consecutiveFailures: consecutiveFailures, window: health.read(at: now)) != nil
        else { return nil }
        return transition(to: .open, reason: .configReload, at: now, random: &random)
    }

    // MARK: Reading

    mutating func window(at now: Timestamp) -> HealthTotals { health.read(at: now) }

    // MARK: Transitions

    /// Moves to `to`, snapshotting the statistics first. Entering `open` picks
    /// the backed-off period, at least `retryAfter` when one was given.
    private mutating func transition(
        to: BreakerState, reason: TransitionReason, at now: Timestamp, random: inout SplitMix64,
        retryAfter: Duration? = nil
    ) -> Transition {
        let totals = health.read(at: now)
        var event = Transition(
            breaker: name, from: state, to: to, at: now, reason: reason, generation: generation &+ 1,
            failureCount: consecutiveFailures, callsInWindow: totals.calls, failuresInWindow: totals.failures,
            failureRate: totals.failureRate, slowCallRate: totals.slowCallRate,
            lastError: lastError, lastStatus: lastStatus
        )
        state = to
        generation &+= 1
        stateSince = now
        rateLimit.note(now)
        openUntil = nil
        nextCandidacy = nil
        probesInFlight = 0
        probeSuccesses = 0
        probeSilentSince = nil
        switch to {
        case .open:
            var period = policy.open.openPeriod(failedProbes: failedProbes, random: &random)
            if let cap = activeProbe?.interval { period = min(period, cap) }
            if let retryAfter { period = max(period, retryAfter) }
            if reason == .retryAfter, let retryAfter { period = retryAfter }
            openUntil = now + period
            event.openUntil = openUntil
        case .closed:
            failedProbes = 0
            clearStatistics()
        case .halfOpen, .forcedOpen, .disabled, .metricsOnly:
            break
        }
        return event
    }

    private mutating func clearStatistics() {
        consecutiveFailures = 0
        health.reset()
    }
}
