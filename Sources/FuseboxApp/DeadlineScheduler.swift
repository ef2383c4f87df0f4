import FuseboxCore
import FuseboxProbe
import ServiceLifecycle

/// The engine's one clock-driven task. It sleeps until the engine's next
/// deadline (an open period running out, a lease expiring, a probe or a
/// closed check falling due, a queued acquire timing out), or until a
/// decision brings that deadline closer; then one pass (`Engine.runDue`)
/// makes what is due, and the probes started go out from tasks of their
/// own and fleet candidates to the fleet. With nothing due it never wakes.
final class DeadlineScheduler: Service {
    private let engine: Engine
    private let prober: ProbeRunner
    private let offerCandidates: (@Sendable ([String]) -> Void)?

    /// The least time between two passes: a deadline that a pass failed to
    /// move on would otherwise spin a core; this bounds such a bug to 1,000 passes a second.
    static let minimumGap = Duration.milliseconds(1)

    init(engine: Engine, prober: ProbeRunner, offerCandidates: (@Sendable ([String]) -> Void)?) {
        self.engine = engine
        self.prober = prober
        self.offerCandidates = offerCandidates
    }

    func run() async throws {
        let engine = self.engine, prober = self.prober
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                while !Task.isShuttingDownGracefully, !Task.isCancelled {
                    let passed = ContinuousClock.now
                    let work = engine.runDue()
                    for ticket in work.probes { group.addTask { await prober.probe(ticket) } }
                    if !work.fleetCandidates.isEmpty { offerCandidates?(work.fleetCandidates) }
                    await sleepUntilDue()
                    try? await Task.sleep(until: passed + Self.minimumGap, clock: .continuous)
                }
            } onGracefulShutdown: {
                engine.deadlineMoved.ring()
            }
            // Probes still out are cut off and count as timeouts.
            group.cancelAll()
        }
        await prober.shutdown()
    }

    /// Returns once the engine's next deadline has come (or shutdown began).
    /// A decision that moves the deadline closer rings the engine's bell, and
    /// the sleep starts over from the new one.
    private func sleepUntilDue() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let wait = engine.nextDeadline.map { engine.timeUntil($0) }
            if let wait, wait <= .zero { return }
            await engine.deadlineMoved.wait(atMost: wait)
        }
    }
}
