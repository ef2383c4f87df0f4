import FuseboxCore
import Logging

/// Sends the probes the engine started and hands each result back. The
/// scheduler (`DeadlineScheduler`) calls `probe` from a task of its own per
/// ticket; nothing here runs on the decision path: a user's acquire only ever
/// reads the state a finished probe left.
public final class ProbeRunner: Sendable {
    private let engine: Engine
    private let sender = ProbeSender()
    private let logger: Logger

    public init(engine: Engine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    /// Sends one started probe and gives the engine its result; cut off
    /// (at its timeout, or cancelled at shutdown) it counts as a timeout.
    public func probe(_ ticket: ProbeTicket) async {
        engine.finishProbe(ticket, await sender.send(ticket))
    }

    /// Closes the probes' HTTP clients; call once no probe is out.
    public func shutdown() async {
        await sender.shutdown(logger: logger)
    }
}
