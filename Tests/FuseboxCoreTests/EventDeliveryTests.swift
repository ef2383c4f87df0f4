import Foundation
import Synchronization
import Testing
@testable import FuseboxCore

/// Events leave the engine after its lock, from whichever thread delivers,
/// yet arrive complete and in decision order.
@Suite("Event delivery")
struct EventDeliveryTests {
    /// Checks order as it receives: each breaker's transitions one generation apart, never two batches at once.
    final class OrderCheckingSink: EngineEventSink {
        struct State {
            var generations: [String: UInt64] = [:]
            var outOfOrder = 0
            var recorded = 0
            var inside = false
            var overlapped = 0
        }
        let state = Mutex(State())

        func receive(_ events: [EngineEvent]) {
            state.withLock { s in
                if s.inside { s.overlapped += 1 }
                s.inside = true
            }
            for event in events {
                state.withLock { s in
                    switch event {
                    case .transitioned(let t):
                        if let last = s.generations[t.breaker], t.generation != last + 1 { s.outOfOrder += 1 }
                        s.generations[t.breaker] = t.generation
                    case .recorded: s.recorded += 1
                    default: break
                    }
                }
            }
            state.withLock { $0.inside = false }
        }
    }

    @Test func manyThreadsDeliverEveryEventOnceInDecisionOrder() throws {
        let sink = OrderCheckingSink()
        let p = policy(consecutiveFailures: 2, open: .milliseconds(1), maxOpen: .milliseconds(1))
        var flapping = p
        flapping.maxTransitionsPerMinute = nil
        let engine = try Engine(
            configuration: EngineConfiguration(breakers: [BreakerDefinition(name: "a", policy: flapping), BreakerDefinition(name: "b", policy: flapping)]),
            sink: sink, seed: 1
        )
        let threads = 4, rounds = 5_000
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread {
                for i in 0..<rounds {
                    let name = (thread + i) % 2 == 0 ? "a" : "b"
                    if let permit = try? engine.acquire(name).permit {
                        _ = try? engine.report(permit.id, i % 3 == 0 ? .success() : CallReport(status: 503))
                    } else {
                        _ = try? engine.record(name, i % 3 == 0 ? .success() : CallReport(status: 503))
                    }
                }
                done.leave()
            }.start()
        }
        done.wait()
        let state = sink.state.withLock { $0 }
        #expect(state.outOfOrder == 0)
        #expect(state.overlapped == 0, "two batches were delivered at once")
        #expect(state.recorded == threads * rounds, "every report and record arrived once")
        #expect((state.generations["a"] ?? 0) > 10 && (state.generations["b"] ?? 0) > 10)
    }
}
