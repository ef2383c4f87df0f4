import FuseboxCore
import Testing
@testable import FuseboxFleet

/// The fleet's rules on an in-memory store and a manual clock: openings
/// across skewed hosts, the single probe lease, forged rows, a compromised
/// peer's numbers, failure streaks and budget shares. tests/fleet runs the
/// same wiring against PostgreSQL.
@Suite("Fleet rules without a database")
struct FleetRulesTests {
    let truth = ManualClock()
    let database: MemoryFleetDatabase

    init() { database = MemoryFleetDatabase(clock: truth) }

    func connected(_ hosts: FleetHost...) async throws -> [FleetHost] {
        for host in hosts { try await host.connect() }
        return hosts
    }

    /// Time passes on every clock at once, the hosts' fleet tasks running every 50 ms as FleetService's do.
    func pass(_ duration: Duration, _ hosts: [FleetHost]) async throws {
        var left = duration
        while left > .zero {
            let step = min(left, .milliseconds(50))
            truth.advance(by: step)
            left -= step
            try await syncAll(hosts, rounds: 1)
        }
    }

    // MARK: Skew

    @Test func anOpeningLastsItsDurationOnHostsThirtySecondsAheadAndBehind() async throws {
        let hosts = try await connected(try FleetHost("ahead", database, skew: .seconds(30)),
                                        try FleetHost("behind", database, skew: .seconds(-30)),
                                        try FleetHost("true", database))
        try hosts[0].fail(times: 2)
        try await syncAll(hosts)
        for host in hosts {
            #expect(host.state == .open)
            #expect(host.openUntil == host.clock.now() + .seconds(2), "\(host.name) ends the opening 2 s from its own now")
        }
        try await pass(.milliseconds(1_950), hosts)
        #expect(hosts.allSatisfy { $0.state == .open }, "no host probes before the period is over")
        try await pass(.milliseconds(100), hosts)
        #expect(hosts.filter { $0.state == .halfOpen }.count == 1, "one host holds the fleet's probe")
    }

    @Test func theProbesResultClosesEveryHostWhateverItsClock() async throws {
        let hosts = try await connected(try FleetHost("ahead", database, skew: .seconds(30)),
                                        try FleetHost("behind", database, skew: .seconds(-30)))
        try hosts[1].fail(times: 2)
        try await syncAll(hosts)
        try await pass(.milliseconds(2_050), hosts)
        let prober = try #require(hosts.first { $0.state == .halfOpen })
        #expect(try prober.call(succeeded: true))
        try await syncAll(hosts)
        #expect(hosts.allSatisfy { $0.state == .closed })
    }

    // MARK: The probe lease

    @Test func aWinnerThatNeverProbesLosesTheLeaseWithinTwoTerms() async throws {
        let hosts = try await connected(try FleetHost("a", database), try FleetHost("b", database))
        try hosts[0].fail(times: 2)
        try await syncAll(hosts)
        try await pass(.milliseconds(2_050), hosts)
        let winner = try #require(hosts.first { $0.state == .halfOpen })
        let loser = try #require(hosts.first { $0.state == .open })
        #expect(try !loser.call(succeeded: true), "the loser waits for the winner's result")
        try await pass(FleetOpenings.leaseTerm * 2, hosts)
        #expect(loser.state == .halfOpen, "the idle winner's lease lapsed and the loser took it")
        #expect(try loser.call(succeeded: true))
        try await syncAll(hosts)
        #expect(winner.state == .closed)
    }

    struct ForgedLease: Sendable, CustomTestStringConvertible {
        var expiresIn: Duration
        /// How long after the forgery the host still cannot probe.
        var heldFor: Duration
        var testDescription: String { "a row expiring in \(expiresIn) holds the probe for \(heldFor)" }
    }

    static let forgedLeases: [ForgedLease] = [
        ForgedLease(expiresIn: FleetOpenings.leaseTerm, heldFor: FleetOpenings.leaseTerm),  // a term, as a sidecar writes: honoured, then lapsed
        ForgedLease(expiresIn: .seconds(365 * 86_400), heldFor: .zero),  // more than two terms: no sidecar wrote it, void
        ForgedLease(expiresIn: .seconds(-10), heldFor: .zero),  // lapsed
    ]

    @Test(arguments: forgedLeases)
    func aLeaseRowForgedByTheFleetsRoleStopsMatteringWithinItsTerm(_ forged: ForgedLease) async throws {
        let host = try await connected(try FleetHost("a", database))[0]
        try host.fail(times: 2)
        try await syncAll([host])
        truth.advance(by: .seconds(2))
        database.tables.withLock {
            $0.probes[FleetHost.breaker] = .init(epoch: .max, holder: "mallory", expires: database.now + forged.expiresIn.millisecondsClamped)
        }
        if forged.heldFor > .zero {
            try await pass(forged.heldFor - .milliseconds(100), [host])
            #expect(host.state == .open, "a live lease is honoured")
        }
        try await pass(.milliseconds(1_200), [host])  // a lost claim waits a second before asking again
        #expect(host.state == .halfOpen)
    }

    // MARK: A peer's numbers

    struct HostileMessage: Sendable, CustomTestStringConvertible {
        var name: String
        /// Whether it may open the breaker at all (within max_retry_after).
        var opens: Bool
        /// JSON with `NOW` and `SEQ` to fill in, sealed with the fleet's secret (a compromised host).
        var body: String
        var testDescription: String { name }
    }

    static let hostile: [HostileMessage] = [
        HostileMessage(name: "failures overflowing when added", opens: true,
                       body: #"{"f":"eu","k":"calls","b":"flaky","n":9223372036854775807,"r":false,"o":"mallory","t":NOW,"q":SEQ}"#),
        HostileMessage(name: "an opening in 2262 after 2^63-1 failed probes", opens: true,
                       body: #"{"f":"eu","b":"flaky","s":"open","u":9223372036854775807,"r":9223372036854775807,"p":9223372036854775807,"e":1,"o":"mallory","t":NOW,"q":SEQ}"#),
        HostileMessage(name: "negative remaining and probes", opens: true,
                       body: #"{"f":"eu","b":"flaky","s":"open","r":-9223372036854775808,"p":-5,"e":1,"o":"mallory","t":NOW,"q":SEQ}"#),
        HostileMessage(name: "an epoch of 2^63-1", opens: false,
                       body: #"{"f":"eu","b":"flaky","s":"open","r":600000,"e":9223372036854775807,"o":"mallory","t":NOW,"q":SEQ}"#),
    ]

    @Test(arguments: hostile)
    func aSealedHostileMessageChangesNoMoreThanALocalEventCould(_ message: HostileMessage) async throws {
        let host = try await connected(try FleetHost("a", database))[0]
        let seal = MessageSeal(FleetHost.secret)
        for sequence in 1...2 {
            let json = message.body.replacingOccurrences(of: "NOW", with: String(database.now))
                .replacingOccurrences(of: "SEQ", with: String(sequence))
            database.notifyAsAnyone(seal.seal(json))
        }
        host.deliver()
        if message.opens {
            #expect(host.state == .open)
            let until = try #require(host.openUntil)
            #expect(until <= host.clock.now() + .seconds(60), "no longer than open.max_retry_after")
        } else {
            #expect(host.state == .closed, "refused")
        }
        // However it was opened, the fleet's probe is due again within max_retry_after.
        try await pass(.seconds(61), [host])
        #expect(host.state == .halfOpen || host.state == .closed)
    }

    @Test func aResetStillReachesEveryPeerAfterAHugeEpoch() async throws {
        let hosts = try await connected(try FleetHost("a", database), try FleetHost("b", database))
        try hosts[0].fail(times: 2)
        try await syncAll(hosts)
        let json = #"{"f":"eu","b":"flaky","s":"closed","e":9223372036854775807,"o":"mallory","t":\#(database.now),"q":1}"#
        database.notifyAsAnyone(MessageSeal(FleetHost.secret).seal(json))
        try await syncAll(hosts)
        #expect(hosts[1].state == .open, "the far epoch was refused")
        _ = try hosts[0].engine.reset(FleetHost.breaker)
        try await syncAll(hosts)
        #expect(hosts[1].state == .closed, "the operator's reset arrived")
    }

    @Test func unsealedAndReplayedMessagesChangeNothing() async throws {
        let hosts = try await connected(try FleetHost("a", database), try FleetHost("b", database))
        database.notifyAsAnyone(#"{"f":"eu","k":"calls","b":"flaky","n":5,"r":false,"o":"mallory","t":\#(database.now),"q":1}"#)
        try await syncAll(hosts)
        #expect(hosts[1].state == .closed, "a connect-only role cannot seal")
        try hosts[0].fail()
        try await hosts[0].sync()
        let captured = try #require(database.tables.withLock { $0.inboxes["b"]?.last })
        try await syncAll(hosts)
        for _ in 0..<3 { database.notifyAsAnyone(captured) }
        hosts[1].deliver()
        let failures = try hosts[1].engine.snapshot(FleetHost.breaker)[0].consecutiveFailures
        #expect(failures == 1, "the captured failure counted once")
        #expect(hosts[1].state == .closed)
    }

    @Test func anOpeningRestoredAfterARestartIsNotPublishedAgain() async throws {
        let hosts = try await connected(try FleetHost("a", database), try FleetHost("b", database))
        let until = hosts[0].clock.now() + .seconds(30)
        hosts[0].engine.restore([FleetHost.breaker: SavedState(mode: .open(until: until), generation: 4)])
        #expect(hosts[0].state == .open)
        try await syncAll(hosts)
        #expect(hosts[1].state == .closed, "peers may have closed it meanwhile: only the fleet's row speaks for the fleet")
        #expect(database.tables.withLock { $0.breakers.isEmpty })
    }

    // MARK: Streaks

    @Test func aPeersFailuresCountHereAndItsSuccessForgetsThem() async throws {
        let hosts = try await connected(try FleetHost("a", database), try FleetHost("b", database))
        try hosts[0].fail()
        try await syncAll(hosts)
        #expect(try hosts[1].engine.snapshot(FleetHost.breaker)[0].consecutiveFailures == 1)
        _ = try hosts[0].engine.record(FleetHost.breaker, .success())
        try await syncAll(hosts)
        try hosts[1].fail()
        #expect(hosts[1].state == .closed, "the peer's success broke the streak")
        try hosts[0].fail()
        try await syncAll(hosts)
        #expect(hosts[1].state == .open, "its failure and ours make two in a row")
    }

    // MARK: Budgets

    static let budgetPolicy = BreakerPolicy(budget: BudgetPolicy(rate: RateLimit(amount: 10, per: .seconds(1)), fleetScoped: .rate))

    @Test func sharesNeverAddUpToMoreThanTheCapacityWhateverAForgedLeaseSays() async throws {
        let hosts = try await connected(try FleetHost("a", database, policy: Self.budgetPolicy),
                                        try FleetHost("b", database, policy: Self.budgetPolicy))
        database.tables.withLock { tables in
            tables.budgets[.init(breaker: "flaky", kind: "rate", member: "nan")] = .init(demand: .nan, share: .nan, expires: database.now + 5_000)
            tables.budgets[.init(breaker: "flaky", kind: "rate", member: "huge")] = .init(demand: 1e300, share: 1e9, expires: database.now + 5_000)
            tables.budgets[.init(breaker: "flaky", kind: "rate", member: "forever")] = .init(demand: 1, share: 10, expires: .max)
        }
        for _ in 0..<3 {
            for host in hosts {
                for _ in 0..<5 { _ = try? host.engine.acquire(FleetHost.breaker) }
                try await host.budgets.refresh(host.store)
            }
            truth.advance(by: .seconds(1))
        }
        let rows = database.tables.withLock { $0.budgets }
        #expect(rows.keys.contains { $0.member == "forever" } == false, "a lease claiming more than two terms is deleted")
        let ours = rows.filter { ["a", "b"].contains($0.key.member) }.map(\.value.share)
        #expect(ours.count == 2)
        #expect(ours.reduce(0, +) <= 10)
        #expect(ours.allSatisfy { $0 > 0 }, "both got a part: the forged rows counted as none")
    }
}
