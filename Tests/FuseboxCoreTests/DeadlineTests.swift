import Synchronization
import Testing
@testable import FuseboxCore

/// Keeps every event the engine delivers, whatever its kind.
final class EventCounter: EngineEventSink {
    private let events = Mutex<[EngineEvent]>([])
    var total: Int { events.withLock { $0.count } }
    func since(_ start: Int) -> [EngineEvent] { events.withLock { Array($0[start...]) } }
    func receive(_ delivered: [EngineEvent]) { events.withLock { $0 += delivered } }
}

/// The scheduler sleeps until `nextDeadline` and nothing else wakes it but a
/// decision's ring, so the deadline must never be late: a pass at any moment
/// before it finds nothing to do. Checked over random decisions and clock
/// jumps on every kind of timer (leases, open periods, `max_wait`, active
/// probes, closed checks, queue timeouts, the transition cap, fleet candidates).
@Suite("The engine's next deadline")
struct DeadlineTests {
    static func breakers() -> [BreakerDefinition] {
        var probed = policy(
            consecutiveFailures: 2, open: .seconds(4), maxOpen: .seconds(20), successesToClose: 2, maxWait: .seconds(3), permitTTL: .seconds(5)
        )
        probed.probe = ProbePolicy(url: "http://127.0.0.1:1/", timeout: .seconds(1), interval: .seconds(6), closedInterval: .seconds(7))
        var queued = policy(consecutiveFailures: 3, open: .seconds(2), permitTTL: .seconds(4))
        queued.budget = BudgetPolicy(maxInFlight: 1, queue: QueuePolicy(max: 4, timeout: .seconds(2)))
        var capped = policy(consecutiveFailures: 1, open: .seconds(1), maxWait: .seconds(2), permitTTL: .seconds(3))
        capped.maxTransitionsPerMinute = 3
        return [
            BreakerDefinition(name: "plain", policy: policy(consecutiveFailures: 2, open: .seconds(5), maxWait: .seconds(4), permitTTL: .seconds(3))),
            BreakerDefinition(name: "probed", policy: probed),
            BreakerDefinition(name: "queued", policy: queued),
            BreakerDefinition(name: "capped", policy: capped),
            BreakerDefinition(name: "gated", policy: policy(consecutiveFailures: 2, open: .seconds(3), probes: 2, maxWait: .seconds(2))),
        ]
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func aPassBeforeTheNextDeadlineFindsNothingToDo(seed: UInt64) throws {
        let clock = ManualClock()
        let counter = EventCounter()
        let engine = try Engine(configuration: EngineConfiguration(breakers: Self.breakers()), clock: clock, sink: counter, seed: seed)
        let names = Self.breakers().map(\.name)
        var random = SplitMix64(seed: seed)
        var held: [Permit] = []
        var probes: [ProbeTicket] = []
        var quietPasses = 0, busyPasses = 0
        engine.gateProbes(["gated"], true)
        for _ in 0..<4_000 {
            let name = names[Int(random.next() % UInt64(names.count))]
            switch random.next() % 12 {
            case 0, 1:
                if let permit = try engine.acquire(name).permit { held.append(permit) }
            case 2:
                let wait = Duration.milliseconds(Int64(random.next() % 3_000))
                if case .decided(let decision) = try engine.acquire("queued", orWait: IgnoringWaiter(), waitAtMost: wait),
                   let permit = decision.permit { held.append(permit) }
            case 3, 4:
                guard !held.isEmpty else { continue }
                let permit = held.remove(at: Int(random.next() % UInt64(held.count)))
                let report: CallReport = random.next() % 2 == 0 ? .success(latency: .milliseconds(10)) : CallReport(status: 503)
                _ = try? engine.report(permit.id, report)
            case 5:
                guard !held.isEmpty else { continue }
                let permit = held[Int(random.next() % UInt64(held.count))]
                if random.next() % 2 == 0 { _ = try? engine.renew(permit.id) } else { try? engine.release(permit.id, .cancelled) }
            case 6:
                try engine.record(name, random.next() % 3 == 0 ? .success() : CallReport(status: 500))
            case 7:
                guard !probes.isEmpty else { continue }
                let ticket = probes.removeFirst()
                let outcome: ProbeOutcome = [.success, .failure, .timeout][Int(random.next() % 3)]
                engine.finishProbe(ticket, ProbeResult(outcome: outcome, latency: .milliseconds(5), status: outcome == .success ? 200 : 500))
            case 8:
                switch random.next() % 5 {
                case 0: engine.applyFleet("gated", .closed)
                case 1: engine.applyFleet("gated", .open(until: clock.now() + .seconds(Int64(random.next() % 6)), probesFailed: 1))
                case 2: engine.gateProbes(["gated"], random.next() % 2 == 0)
                case 3: _ = engine.beginFleetProbe("gated")
                default: try engine.force(name, random.next() % 2 == 0 ? .auto : .open)
                }
            default:
                let step = Duration.milliseconds(Int64(random.next() % (random.next() % 8 == 0 ? 12_000 : 1_500)))
                let target = clock.now() + step
                let before = counter.total
                if let next = engine.nextDeadline, next <= target {
                    clock.advance(by: step)
                    probes += engine.runDue().probes
                    busyPasses += 1
                } else {
                    clock.advance(by: step)
                    let work = engine.runDue()
                    #expect(work.probes.isEmpty && work.fleetCandidates.isEmpty && counter.total == before,
                            "a pass before the deadline did something (step \(step)): \(counter.since(before))")
                    quietPasses += 1
                }
            }
        }
        #expect(quietPasses > 100 && busyPasses > 100, "both kinds of pass are exercised")
    }

    @Test func anIdleEngineHasNoDeadlineAndAFirstLeaseRingsTheScheduler() async throws {
        let clock = ManualClock()
        let engine = try Engine(configuration: EngineConfiguration(breakers: Self.breakers().filter { $0.name == "plain" }), clock: clock)
        #expect(engine.runDue().next == nil && engine.nextDeadline == nil, "nothing is due until a decision")
        let permit = try #require(try engine.acquire("plain").permit)
        #expect(engine.nextDeadline == permit.deadline)
        #expect(await engine.deadlineMoved.wait(atMost: .seconds(30)), "the lease brought the deadline closer: rung")
        _ = try engine.acquire("plain")
        #expect(await !engine.deadlineMoved.wait(atMost: .zero), "a later lease does not ring")
    }

    @Test func aRingWhileNobodyWaitsIsKeptForTheNextWait() async {
        let bell = Doorbell()
        bell.ring()
        #expect(await bell.wait(atMost: nil))
        #expect(await !bell.wait(atMost: .milliseconds(1)), "taken once")
    }
}
