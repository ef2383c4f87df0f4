import FuseboxCore
import FuseboxJSON
import FuseboxTelemetry
import Logging
import PostgresNIO
import Synchronization

/// Shared openings: local decisions of shared breakers published to the
/// fleet (a row in `fleet_breakers` and a NOTIFY), peers' decisions applied
/// here with reason `fleet`, and the fleet's single probe claimed as a lease.
///
/// The engine feeds it events after its lock; `receive` only records what
/// to publish (the latest per breaker, so the backlog is bounded by the
/// number of breakers) and wakes the fleet task.
final class FleetOpenings: Sendable {
    static let channel = "fusebox_fleet"
    /// PostgreSQL's own clock in Unix ms. Times stored for other hosts to
    /// compare (an opening's end, a lease's expiry) are in this one clock, and
    /// each host reads them back as a duration from now: no host's wall clock
    /// is ever compared with another's, so a skewed host opens, probes and
    /// leases on time.
    static let databaseNow = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

    let fleet: String
    let member: String
    private let engine: Engine
    private let series: FleetSeries
    private let logger: Logger
    private let clock: any BreakerClock
    private let pending = Mutex<[String: FleetState]>([:])
    /// Failures in a row to tell peers, per breaker; `told` marks breakers whose failures peers have counted.
    private let streaks = Mutex<(pending: [String: CallStreak], told: Set<String>)>(([:], []))
    /// The newest fleet epoch seen per breaker: older notifications are stale.
    private let epochs = Mutex<[String: Int64]>([:])
    /// Claims lost, per breaker: the epoch and until when not to ask again.
    private let lost = Mutex<[String: (epoch: Int64, until: Timestamp)]>([:])
    /// Probe leases held here, per breaker.
    private let held = Mutex<[String: HeldLease]>([:])
    /// Wakes the publisher of the current connection (a stream ends with the task that reads it, so one per connection).
    private let wake = Mutex<AsyncStream<Void>.Continuation?>(nil)

    init(fleet: String, member: String, engine: Engine, series: FleetSeries, clock: any BreakerClock, logger: Logger) {
        self.fleet = fleet
        self.member = member
        self.engine = engine
        self.series = series
        self.clock = clock
        self.logger = logger
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
        case .transitioned(let t) where t.reason != .fleet:
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
    func publishStreaks(_ connection: PostgresConnection, shared: Set<String>) async throws {
        let batch = streaks.withLock { s -> [String: CallStreak] in
            // The engine's lock under this one is safe: the engine feeds `note` only after releasing its own.
            let told = s.pending.filter { breaker, _ in countsCalls(breaker) }
            s.pending.removeAll(keepingCapacity: true)
            for (breaker, streak) in told where streak.failures > 0 { s.told.insert(breaker) }
            return told
        }
        for (breaker, streak) in batch.sorted(by: { $0.key < $1.key }) where shared.contains(breaker) {
            var writer = JSONWriter()
            writer.string("f", fleet)
            writer.string("k", "calls")
            writer.string("b", breaker)
            writer.int("n", streak.failures)
            writer.bool("r", streak.resets)
            writer.string("o", member)
            let payload = String(decoding: writer.finish(), as: UTF8.self)
            try await connection.query("SELECT pg_notify('\(unescaped: Self.channel)', \(payload))", logger: logger)
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
    func publishPending(_ connection: PostgresConnection, shared: Set<String>) async throws {
        let batch = pending.withLock { all -> [String: FleetState] in
            defer { all.removeAll(keepingCapacity: true) }
            return all
        }
        for (breaker, state) in batch.sorted(by: { $0.key < $1.key }) where shared.contains(breaker) {
            do {
                try await publish(breaker, state, connection)
            } catch {
                // Kept for the next connection unless something newer came meanwhile.
                pending.withLock { all in if all[breaker] == nil { all[breaker] = state } }
                throw error
            }
        }
    }

    private func publish(_ breaker: String, _ state: FleetState, _ connection: PostgresConnection) async throws {
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
        let rows = try await connection.query("""
            WITH up AS (
                INSERT INTO fleet_breakers (fleet, breaker, state, open_until_ms, probes_failed, epoch, origin, published_ms)
                VALUES (\(fleet), \(breaker), \(stateText), (\(remaining))::bigint + \(unescaped: Self.databaseNow), \(probesFailed), 1,
                        \(member), \(now))
                ON CONFLICT (fleet, breaker) DO UPDATE SET
                    state = EXCLUDED.state, open_until_ms = EXCLUDED.open_until_ms, probes_failed = EXCLUDED.probes_failed,
                    epoch = fleet_breakers.epoch + 1, origin = EXCLUDED.origin, published_ms = EXCLUDED.published_ms
                RETURNING fleet, breaker, state, open_until_ms, probes_failed, epoch, origin, published_ms)
            SELECT epoch, pg_notify('\(unescaped: Self.channel)', json_build_object(
                'f', fleet, 'b', breaker, 's', state, 'u', open_until_ms, 'r', open_until_ms - \(unescaped: Self.databaseNow),
                'p', probes_failed, 'e', epoch, 'o', origin, 't', published_ms
            )::text) FROM up
            """, logger: logger)
        for try await (epoch, _) in rows.decode((Int64, String).self) { noteEpoch(breaker, epoch) }
        series.publishedState()
    }

    private func noteEpoch(_ breaker: String, _ epoch: Int64) {
        epochs.withLock { $0[breaker] = max($0[breaker] ?? 0, epoch) }
    }

    // MARK: From peers

    /// A NOTIFY payload: applies a peer's newer state, ignores our own and stale ones.
    func received(_ payload: String, shared: Set<String>) {
        guard let value = try? JSONParser.parse(payload) else { return }
        if case .string("calls")? = value["k"] {
            guard case .string(fleet)? = value["f"], case .string(let breaker)? = value["b"], case .string(let origin)? = value["o"],
                  origin != member, shared.contains(breaker), case .number(let count)? = value["n"], let failures = Int(count)
            else { return }
            let resets: Bool
            if case .bool(true)? = value["r"] { resets = true } else { resets = false }
            engine.recordRemote(breaker, resets: resets, failures: failures)
            return
        }
        guard let row = PublishedState(value), row.fleet == fleet else { return }
        apply(row, shared: shared, catchingUp: false)
    }

    /// On (re)connecting: the table's current openings, so a sidecar that was away catches up.
    func catchUp(_ connection: PostgresConnection, shared: Set<String>) async throws {
        // In numeric and bounded: a row's end written by anyone with the table's privileges cannot overflow the subtraction.
        let rows = try await connection.query("""
            SELECT breaker, state, open_until_ms,
                   least(greatest(open_until_ms::numeric - \(unescaped: Self.databaseNow), -1e15), 1e15)::bigint,
                   probes_failed, epoch, origin, published_ms
            FROM fleet_breakers WHERE fleet = \(fleet)
            """, logger: logger)
        for try await (breaker, state, until, remaining, probes, epoch, origin, published)
            in rows.decode((String, String, Int64?, Int64?, Int, Int64, String, Int64).self) {
            apply(PublishedState(fleet: fleet, breaker: breaker, state: state, openUntil: until, remaining: remaining, probesFailed: probes,
                                 epoch: epoch, origin: origin, publishedAt: published), shared: shared, catchingUp: true)
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
        if !catchingUp { series.propagated(clock.now() - Timestamp.milliseconds(row.publishedAt)) }
    }

    // MARK: The fleet's one probe

    /// How long a probe lease lasts unless its holder renews it. The holder
    /// renews while its probe is out, so a holder that died, lost its link or
    /// had no call to let through frees the fleet within about this long.
    static let leaseTerm = Duration.seconds(3)

    /// For each shared breaker whose open period ran out here: claims the probe
    /// lease for its epoch. The winner goes half-open; the others wait for its result.
    /// A lease is free once lapsed, or for a newer epoch, or to its own holder
    /// (due again here, so its last probe is over: a result peers never saw
    /// must not hold the fleet open).
    func claimProbes(_ connection: PostgresConnection) async throws {
        try await renewLeases(connection)
        let now = clock.now()
        for breaker in engine.probeCandidates() {
            let epoch = epochs.withLock { $0[breaker] ?? 0 }
            if let lastLost = lost.withLock({ $0[breaker] }), lastLost.epoch == epoch, now < lastLost.until { continue }
            let expires = now + Self.leaseTerm
            let term = Self.leaseTerm.millisecondsClamped
            // Expiries are in PostgreSQL's clock (`databaseNow`): a host ahead never takes a lease early.
            let rows = try await connection.query("""
                INSERT INTO fleet_probes (fleet, breaker, epoch, holder, expires_ms)
                VALUES (\(fleet), \(breaker), \(epoch), \(member), \(unescaped: Self.databaseNow) + \(term))
                ON CONFLICT (fleet, breaker) DO UPDATE SET epoch = EXCLUDED.epoch, holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms
                WHERE fleet_probes.epoch < EXCLUDED.epoch OR fleet_probes.expires_ms < \(unescaped: Self.databaseNow)
                   OR fleet_probes.holder = EXCLUDED.holder
                   OR fleet_probes.expires_ms > \(unescaped: Self.databaseNow) + \(term * 2)
                RETURNING holder
                """, logger: logger)
            var won = false
            for try await holder in rows.decode(String.self) where holder == member { won = true }
            if !won {
                lost.withLock { $0[breaker] = (epoch, now + .seconds(1)) }
            } else if engine.beginFleetProbe(breaker) {
                held.withLock { $0[breaker] = HeldLease(epoch: epoch, expires: expires, busy: now) }
            } else {
                // No longer due (a peer's result came meanwhile): handed back at once.
                try await connection.query("""
                    DELETE FROM fleet_probes WHERE fleet = \(fleet) AND breaker = \(breaker) AND holder = \(member) AND epoch = \(epoch)
                    """, logger: logger)
            }
        }
    }

    /// Renews the leases whose probe is still out here (half-open, a probe in
    /// flight within the last term), once half their term is gone; forgets
    /// the others: a finished probe's result is published, and a newer epoch
    /// frees the lease anyway. An idle holder's lease lapses, so a peer with
    /// calls to make probes instead.
    private func renewLeases(_ connection: PostgresConnection) async throws {
        let now = clock.now()
        let leases = held.withLock { $0 }
        for (breaker, lease) in leases.sorted(by: { $0.key < $1.key }) {
            guard let breakerNow = try? engine.snapshot(breaker).first, breakerNow.state == .halfOpen else {
                held.withLock { _ = $0.removeValue(forKey: breaker) }
                continue
            }
            var renewed = lease
            if breakerNow.probesInFlight > 0 { renewed.busy = now }
            if lease.expires - now < Self.leaseTerm / 2, now - renewed.busy < Self.leaseTerm {
                renewed.expires = now + Self.leaseTerm
                try await connection.query("""
                    UPDATE fleet_probes SET expires_ms = \(unescaped: Self.databaseNow) + \(Self.leaseTerm.millisecondsClamped)
                    WHERE fleet = \(fleet) AND breaker = \(breaker) AND holder = \(member) AND epoch = \(lease.epoch)
                    """, logger: logger)
            }
            held.withLock { $0[breaker] = renewed }
        }
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

/// One row of `fleet_breakers`, as stored and as NOTIFY carries it.
struct PublishedState {
    var fleet: String
    var breaker: String
    var state: String
    /// The end of an opening in PostgreSQL's clock (as stored), and what remained of it when read or sent.
    var openUntil: Int64?
    var remaining: Int64?
    var probesFailed: Int
    var epoch: Int64
    var origin: String
    var publishedAt: Int64

    init(
        fleet: String, breaker: String, state: String, openUntil: Int64?, remaining: Int64?, probesFailed: Int, epoch: Int64, origin: String,
        publishedAt: Int64
    ) {
        self.fleet = fleet
        self.breaker = breaker
        self.state = state
        self.openUntil = openUntil
        self.remaining = remaining
        self.probesFailed = probesFailed
        self.epoch = epoch
        self.origin = origin
        self.publishedAt = publishedAt
    }

    init?(_ value: JSONValue) {
        func text(_ key: String) -> String? { if case .string(let s)? = value[key] { return s } else { return nil } }
        func number(_ key: String) -> Int64? { if case .number(let n)? = value[key] { return Int64(n) } else { return nil } }
        guard let fleet = text("f"), let breaker = text("b"), let state = text("s"), let epoch = number("e"),
              let origin = text("o"), let published = number("t") else { return nil }
        self.init(fleet: fleet, breaker: breaker, state: state, openUntil: number("u"), remaining: number("r"),
                  probesFailed: Int(number("p") ?? 0), epoch: epoch, origin: origin, publishedAt: published)
    }

    /// The peer's decision in this host's clock: an opening ends `remaining` from `now`.
    func fleetState(at now: Timestamp) -> FleetState? {
        switch state {
        case "open": return remaining.map { .open(until: now + .milliseconds($0), probesFailed: probesFailed) }
        case "closed": return .closed
        case "reset": return .reset
        default:
            guard state.hasPrefix("forced:"), let mode = ForcedMode(rawValue: String(state.dropFirst(7))) else { return nil }
            return .forced(mode)
        }
    }
}
