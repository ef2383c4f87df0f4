import FuseboxConfig
import FuseboxCore
import FuseboxJSON
import FuseboxTelemetry
import Logging
import Synchronization

/// Shared openings: local decisions of shared breakers published to the
/// fleet (a row in `fleet_breakers` and a NOTIFY), peers' decisions applied
/// here with reason `fleet`, and the fleet's single probe claimed as a lease.
///
/// The engine feeds it events after its lock; `note` only records what
/// to publish (the latest per breaker, so the backlog is bounded by the
/// number of breakers) and wakes the fleet task. What it stores and sends goes
/// through a `FleetStore`. Times stored for other hosts to compare (an
/// opening's end, a lease's expiry) are in the database's clock, and each host
/// reads them back as a duration from now: no host's wall clock is ever
/// compared with another's, so a skewed host opens, probes and leases on time.
final class FleetOpenings: Sendable {

    let fleet: String
    let member: String
    private let engine: Engine
    private let series: FleetSeries
    private let logger: Logger
    private let clock: any BreakerClock
    private let seal: MessageSeal
    let databaseClock: DatabaseClock
    /// This sidecar's message numbers, one sequence for all its messages (`ReplayGuard`).
    private let sequence = Mutex<Int64>(0)
    private let replays = Mutex(ReplayGuard())
    /// Refused peer messages per reason since its last warning, and when that was logged (at most one a minute per reason).
    private let refusals = Mutex<[MessageSeal.Refusal: (count: Int, loggedAt: Timestamp?)]>([:])
    private let pending = Mutex<[String: FleetState]>([:])
    /// Failures in a row to tell peers, per breaker; `told` marks breakers whose failures peers have counted.
    private let streaks = Mutex<(pending: [String: CallStreak], told: Set<String>)>(([:], []))
    /// The newest fleet epoch seen per breaker: older notifications are stale.
    private let epochs = Mutex<[String: Int64]>([:])
    /// Claims lost, per breaker: the epoch and until when not to ask again.
    private let lost = Mutex<[String: (epoch: Int64, until: Timestamp)]>([:])
    /// Probe leases held here, per breaker.
    private let held = Mutex<[String: HeldLease]>([:])
    /// Breakers the engine's scheduler offered for the fleet's probe, not yet claimed.
    private let offered = Mutex<Set<String>>([])
    /// Wakes the publisher of the current connection (a stream ends with the task that reads it, so one per connection).
    private let wake = Mutex<AsyncStream<Void>.Continuation?>(nil)

    init(fleet: String, member: String, secret: FleetSecret, engine: Engine, series: FleetSeries, clock: any BreakerClock, logger: Logger) {
        self.fleet = fleet
        self.member = member
        self.engine = engine
        self.series = series
        self.clock = clock
        self.logger = logger
        seal = MessageSeal(secret)
        databaseClock = DatabaseClock(clock: clock)
    }

    private func nextSequence() -> Int64 { sequence.withLock { $0 += 1; return $0 } }

    /// Sends one sealed message on the fleet's channel.
    private func notify(_ json: String, _ store: some FleetStore) async throws {
        try await store.notify(seal.seal(json))
    }

    /// A fresh wake-up stream for a new connection's publisher.
    func makeWakes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        wake.withLock { $0?.finish(); $0 = continuation }
        return stream
    }

    /// Breakers that take part (`fleet: false` keeps one local), read from the running configuration.
    var sharedBreakers: Set<String> {
        Set(((try? engine.snapshot()) ?? []).filter(\.policy.fleetShared).map(\.name))
    }

    // MARK: From the engine

    func note(_ event: EngineEvent) {
        if case .recorded(let call) = event, !call.stale { noteCall(call); return }
        let state: (String, FleetState)?
        switch event {
        // A restored state is this sidecar's past, not news: the fleet's rows (caught up at connect) are the fleet's.
        case .transitioned(let t) where t.reason != .fleet && t.reason != .restored:
            switch (t.to, t.reason) {
            case (.open, .forced), (.open, .reset): state = nil
            case (.open, _): state = t.openUntil.map { (t.breaker, .open(until: $0, probesFailed: 0)) }
            case (.closed, .probeSucceeded): state = (t.breaker, .closed)
            default: state = nil
            }
        case .operated(let breaker, let action, let local, _) where !local:
            switch action {
            case .force(let mode): state = (breaker, .forced(mode))
            case .reset: state = (breaker, .reset)
            }
        default: state = nil
        }
        guard let (breaker, fleetState) = state else { return }
        pending.withLock { $0[breaker] = fleetState }
        _ = wake.withLock { $0?.yield() }
    }

    /// A failure is told to peers; a success only when peers hold failures of ours to forget.
    private func noteCall(_ call: RecordedCall) {
        let wakeUp = streaks.withLock { s -> Bool in
            if call.outcome.isFailure {
                s.pending[call.breaker, default: CallStreak()].failures += 1
                return true
            }
            guard call.outcome == .success, s.told.contains(call.breaker) else { return false }
            s.told.remove(call.breaker)
            s.pending[call.breaker] = CallStreak(resets: true, failures: 0)
            return true
        }
        if wakeUp { _ = wake.withLock { $0?.yield() } }
    }

    // MARK: To PostgreSQL

    /// Tells peers the failures (and resets) seen here since the last call: a NOTIFY only, nothing stored.
    /// Not for a breaker no longer closed here: its opening is what peers need,
    /// and the failures that caused it, told as well, could trip a peer on
    /// the same incident, whose late publication would reopen a sidecar reset meanwhile.
    func publishStreaks(_ store: some FleetStore, shared: Set<String>) async throws {
        let batch = streaks.withLock { s -> [String: CallStreak] in
            // The engine's lock under this one is safe: the engine feeds `note` only after releasing its own.
            let told = s.pending.filter { breaker, _ in countsCalls(breaker) }
            s.pending.removeAll(keepingCapacity: true)
            for (breaker, streak) in told where streak.failures > 0 { s.told.insert(breaker) }
            return told
        }
        for (breaker, streak) in batch.sorted(by: { $0.key < $1.key }) where shared.contains(breaker) {
            guard let now = databaseClock.now() else { continue }
            let message = CallsMessage(fleet: fleet, breaker: breaker, failures: streak.failures, resets: streak.resets, origin: member,
                                       sentAt: now, sequence: nextSequence())
            try await notify(message.json, store)
        }
    }

    /// Whether `breaker` still counts calls here (closed, or metrics only):
    /// read after the decision that queued them, so a batch holding the
    /// failure that opened it already sees it open.
    private func countsCalls(_ breaker: String) -> Bool {
        guard let state = try? engine.snapshot(breaker).first?.state else { return false }
        return state == .closed || state == .metricsOnly
    }

    /// Publishes what the engine decided since the last call.
    func publishPending(_ store: some FleetStore, shared: Set<String>) async throws {
        let batch = pending.withLock { all -> [String: FleetState] in
            defer { all.removeAll(keepingCapacity: true) }
            return all
        }
        for (breaker, state) in batch.sorted(by: { $0.key < $1.key }) where shared.contains(breaker) {
            do {
                try await publish(breaker, state, store)
            } catch {
                // Kept for the next connection unless something newer came meanwhile.
                pending.withLock { all in if all[breaker] == nil { all[breaker] = state } }
                throw error
            }
        }
    }

    private func publish(_ breaker: String, _ state: FleetState, _ store: some FleetStore) async throws {
        var stateText: String
        var until: Int64?
        var probesFailed = 0
        switch state {
        case .open(let openUntil, _):
            stateText = "open"
            until = openUntil.milliseconds
            probesFailed = (try? engine.snapshot(breaker).first?.failedProbes) ?? 0
        case .closed: stateText = "closed"
        case .forced(let mode): stateText = "forced:" + mode.rawValue
        case .reset: stateText = "reset"
        }
        let now = clock.now().milliseconds
        // How long it stays open, a duration: stored as an end in PostgreSQL's clock, sent as what remains.
        let remaining = until.map { max(0, $0 - now) }
        // The row first (its epoch is the table's), then the sealed message built from what was stored.
        let write = StateWrite(breaker: breaker, state: stateText, remaining: remaining, probesFailed: probesFailed)
        guard let row = try await store.publish(write) else { return }
        let stored = PublishedState(fleet: fleet, breaker: breaker, state: stateText, openUntil: row.openUntil, remaining: row.remaining,
                                    probesFailed: probesFailed, epoch: row.epoch, origin: member, publishedAt: row.publishedAt,
                                    sequence: nextSequence())
        noteEpoch(breaker, stored.epoch)
        try await notify(stored.json, store)
        series.publishedState()
    }

    private func noteEpoch(_ breaker: String, _ epoch: Int64) {
        epochs.withLock { $0[breaker] = max($0[breaker] ?? 0, epoch) }
    }

    // MARK: From peers

    /// A NOTIFY payload: a peer's message, applied only when sealed with the
    /// fleet's secret, of this fleet, and neither stale nor replayed; our own are ignored.
    func received(_ payload: String, shared: Set<String>) {
        let message: FleetMessage
        switch seal.open(payload) {
        case .failure(let refusal): return refuse(refusal)
        case .success(let json):
            guard let value = try? JSONParser.parse(String(json)), let parsed = FleetMessage(value) else { return refuse(.malformed) }
            message = parsed
        }
        let stamp = message.stamp
        guard stamp.fleet == fleet, stamp.origin != member else { return }
        guard let now = databaseClock.now() else { return refuse(.stale) }
        if let refusal = replays.withLock({ $0.admit(origin: stamp.origin, sequence: stamp.sequence, sentAt: stamp.sentAt, now: now) }) {
            return refuse(refusal)
        }
        switch message {
        case .calls(let calls):
            guard shared.contains(calls.breaker) else { return }
            engine.recordRemote(calls.breaker, resets: calls.resets, failures: calls.failures)
        case .state(let row):
            apply(row, shared: shared, catchingUp: false)
        }
    }

    /// Counts a refused message; a warning at most once a minute, so a flood of forgeries cannot flood the log.
    private func refuse(_ refusal: MessageSeal.Refusal) {
        series.refusedMessage(refusal.rawValue)
        let now = clock.now()
        let count = refusals.withLock { all -> Int? in
            var state = all[refusal] ?? (0, nil)
            state.count += 1
            defer { all[refusal] = state }
            if let last = state.loggedAt, now - last < .seconds(60) { return nil }
            defer { state = (0, now) }
            return state.count
        }
        guard let count else { return }
        logger.warning("fleet_message_refused", metadata: [
            "reason": .string(refusal.rawValue), "refused": .stringConvertible(count),
            "note": .string("a NOTIFY on the fleet channel without this fleet's seal, or sent again; see docs/fleet.md#trust"),
        ])
    }

    /// On (re)connecting: the table's current openings, so a sidecar that was away catches up.
    func catchUp(_ store: some FleetStore, shared: Set<String>) async throws {
        for row in try await store.states() {
            apply(row, shared: shared, catchingUp: true)
        }
    }

    /// How far ahead of the last epoch seen a NOTIFY's epoch may be. NOTIFY
    /// takes no privilege, so its payload is anyone's word: an epoch far
    /// ahead would hide every later real one. The table (read at catch-up)
    /// takes the fleet's privileges, and its epoch is believed as it is.
    static let epochWindow: Int64 = 1_000

    private func apply(_ row: PublishedState, shared: Set<String>, catchingUp: Bool) {
        let fresh = epochs.withLock { all -> Bool in
            let last = all[row.breaker] ?? 0
            let (ahead, overflow) = row.epoch.subtractingReportingOverflow(last)
            guard row.epoch > last, catchingUp || (!overflow && ahead <= Self.epochWindow) else { return false }
            all[row.breaker] = row.epoch
            return true
        }
        guard fresh, row.origin != member, shared.contains(row.breaker), let state = row.fleetState(at: clock.now()) else { return }
        // Catching up, only an opening still running (or a forced state) is news: a closed row
        // older than what this sidecar saw while away must not close a breaker it opened itself.
        if catchingUp {
            switch state {
            case .open(let until, _): guard until > clock.now() else { return }
            case .forced: break
            case .closed, .reset: return
            }
        }
        // The peer's name as it wrote it, bounded: it goes into every output of the transition.
        engine.applyFleet(row.breaker, state, origin: String(decoding: row.origin.utf8.prefix(255), as: UTF8.self))
        series.appliedState()
        if !catchingUp, let now = databaseClock.now() { series.propagated(.milliseconds(now &- row.publishedAt)) }
    }

    // MARK: The fleet's one probe

    /// How long a probe lease lasts unless its holder renews it. The holder
    /// renews while its probe is out, so a holder that died, lost its link or
    /// had no call to let through frees the fleet within about this long.
    static let leaseTerm = Duration.seconds(3)

    /// Shared breakers whose open period ran out here (the engine's
    /// scheduler offers each again every half second until it leaves open).
    func offer(_ breakers: [String]) {
        offered.withLock { $0.formUnion(breakers) }
    }

    /// For each breaker offered since the last call: claims the probe
    /// lease for its epoch. The winner goes half-open; the others wait for its result.
    /// A lease is free once lapsed, or for a newer epoch, or to its own holder
    /// (due again here, so its last probe is over: a result peers never saw
    /// must not hold the fleet open).
    func claimProbes(_ store: some FleetStore) async throws {
        try await renewLeases(store)
        let now = clock.now()
        let candidates = offered.withLock { offered in
            defer { offered.removeAll() }
            return offered.sorted()
        }
        for breaker in candidates {
            let epoch = epochs.withLock { $0[breaker] ?? 0 }
            if let lastLost = lost.withLock({ $0[breaker] }), lastLost.epoch == epoch, now < lastLost.until { continue }
            let expires = now + Self.leaseTerm
            // Expiries are in the database's clock: a host ahead never takes a lease early.
            if try await !store.claimProbe(breaker: breaker, epoch: epoch, term: Self.leaseTerm) {
                lost.withLock { $0[breaker] = (epoch, now + .seconds(1)) }
            } else if engine.beginFleetProbe(breaker) {
                held.withLock { $0[breaker] = HeldLease(epoch: epoch, expires: expires, busy: now) }
            } else {
                // No longer due (a peer's result came meanwhile): handed back at once.
                try await store.releaseProbe(breaker: breaker, epoch: epoch)
            }
        }
    }

    /// Renews the leases whose probe is still out here (half-open, a probe
    /// in flight at a renewal within the last term), once half their term is gone; forgets
    /// the others: a finished probe's result is published, and a newer epoch
    /// frees the lease anyway. An idle holder's lease lapses, so a peer with
    /// calls to make probes instead.
    private func renewLeases(_ store: some FleetStore) async throws {
        let now = clock.now()
        let leases = held.withLock { $0 }
        for (breaker, lease) in leases.sorted(by: { $0.key < $1.key }) {
            guard let breakerNow = try? engine.snapshot(breaker).first, breakerNow.state == .halfOpen else {
                held.withLock { _ = $0.removeValue(forKey: breaker) }
                continue
            }
            var renewed = lease
            if breakerNow.probesInFlight > 0 { renewed.busy = now }
            if lease.expires - now <= Self.leaseTerm / 2, now - renewed.busy < Self.leaseTerm {
                renewed.expires = now + Self.leaseTerm
                try await store.renewProbe(breaker: breaker, epoch: lease.epoch, term: Self.leaseTerm)
            }
            held.withLock { $0[breaker] = renewed }
        }
    }

    /// When `claimProbes` next has a lease to renew (half its term before it lapses); nil: none held.
    var nextRenewal: Timestamp? {
        held.withLock { $0.values.map { $0.expires - Self.leaseTerm / 2 }.min() }
    }
}

/// A probe lease this sidecar holds: its epoch, when it lapses unless
/// renewed, and when a probe was last seen in flight under it.
struct HeldLease {
    var epoch: Int64
    var expires: Timestamp
    var busy: Timestamp
}

/// Failures in a row seen here and not yet told; `resets` when a success came before them.
struct CallStreak: Sendable {
    var resets = false
    var failures = 0
}
