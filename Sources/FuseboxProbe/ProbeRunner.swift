import AsyncHTTPClient
import FuseboxCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Sends the breakers' active probes. Every `tick` it asks the engine which
/// probes are due (the engine marks them started under its lock, one per
/// breaker), sends each from its own task and hands the result back. Nothing
/// here runs on the decision path: a user's acquire only ever reads the state
/// a finished probe left.
public final class ProbeRunner: Service, Sendable {
    private let engine: Engine
    private let sender: ProbeSender
    private let tick: Duration
    private let logger: Logger

    public init(engine: Engine, logger: Logger, tick: Duration = .milliseconds(50)) {
        self.engine = engine
        self.sender = ProbeSender()
        self.tick = tick
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                for ticket in engine.startDueProbes() {
                    group.addTask { [engine, sender] in
                        let result = await sender.send(ticket)
                        engine.finishProbe(ticket, result)
                    }
                }
                try? await Task.sleep(for: tick)
            }
            // Probes still out are cut off: their breakers keep the probe's
            // slot only until `half_open.max_wait`, like a silent user probe.
            group.cancelAll()
        }
        await sender.shutdown(logger: logger)
    }
}
