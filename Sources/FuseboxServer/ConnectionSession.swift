import FuseboxCore
import FuseboxStateFile
import FuseboxWire
import FuseboxTelemetry
import Logging

/// One connection's view of the protocol: decodes a line, runs it against the
/// engine, and encodes the answer. Its permits are tagged with its owner in
/// the engine, which caps them and releases them when the connection goes.
/// Error text is redacted here, at the edge, so no output ever holds a
/// secret. No sockets here: the NIO handler feeds it lines, and tests can too.
public final class ConnectionSession {
    /// What the handler must do besides writing `bytes`.
    public struct Reply {
        public var bytes: [UInt8]
        public var subscribe = false
        public var op: Request.Op?
        public var error: ErrorCode?
        /// The acquire queued: its answer comes later through `waiter`,
        /// and later requests of this connection wait behind it.
        public var queued: WaitTicket?
        /// The chain a `route` asked along (it exists: unknown chains are errors).
        public var chain: String?
        /// Calls a client let through without a breaker since it last said so (`hello`'s `fail_open`).
        public var clientFailOpen = 0
    }

    /// This connection's one waiter, which carries a queued acquire's answer
    /// back to its event loop. Without it an acquire never queues: it is
    /// refused at the cap.
    public var waiter: (any QueueWaiter)?
    /// The acquire this connection is waiting on (at most one: later lines
    /// wait behind it), withdrawn if it goes away, and its request's id.
    private var pendingWait: WaitTicket?
    private var pendingID: RequestID?

    let engine: Engine
    private let isAdmin: Bool
    private let serverName: String
    private let redactErrors: Bool
    /// The fast path's file this sidecar made, named in `hello` so clients trust no other.
    private let stateFile: StateFileBoard.Identity?
    private let logger: Logger
    /// This connection in the engine's permit table.
    let owner: PermitOwner

    public init(
        engine: Engine, isAdmin: Bool, serverName: String, maxPermits: Int = 1_024, redactErrors: Bool = true,
        stateFile: StateFileBoard.Identity? = nil, logger: Logger = Logger(label: "fusebox")
    ) {
        self.stateFile = stateFile
        self.engine = engine
        self.isAdmin = isAdmin
        self.serverName = serverName
        self.redactErrors = redactErrors
        self.logger = logger
        self.owner = engine.openOwner(maxPermits: maxPermits)
    }

    public func handle(_ line: UnsafeRawBufferPointer) -> Reply {
        switch RequestDecoder.decode(line) {
        case .failure(let error):
            return Reply(bytes: error.unanswered ? [] : ResponseEncoder.error(error), error: error.code)
        case .success(let envelope):
            do {
                var reply = try serve(envelope)
                reply.op = envelope.request.op
                return reply
            } catch {
                var wire = (error as? EngineError).map(Self.wireError) ?? (error as? WireError)
                    ?? WireError(.badRequest, "\(error)")
                wire.id = envelope.id
                // A record sent with "reply": false is never answered, errors included: the client is not reading.
                return Reply(bytes: envelope.reply ? ResponseEncoder.error(wire) : [], op: envelope.request.op, error: wire.code)
            }
        }
    }

    public func handle(_ line: String) -> Reply {
        let bytes = Array(line.utf8)
        return bytes.withUnsafeBytes { handle($0) }
    }

    /// Throws `WireError` for protocol problems and `EngineError` for the engine's.
    private func serve(_ envelope: Envelope) throws -> Reply {
        let id = envelope.id
        if envelope.request.op.isAdmin, !isAdmin {
            throw WireError(.forbidden, "\"\(envelope.request.op.rawValue)\" is allowed only on the admin socket")
        }
        switch envelope.request {
        case .hello(let version, _, let failOpen):
            if let version, version != WireLimits.protocolVersion {
                throw WireError(.unsupportedProtocol, "this server speaks protocol \(WireLimits.protocolVersion); the client asked for \(version)")
            }
            var reply = Reply(bytes: ResponseEncoder.hello(
                id, server: serverName, breakers: engine.breakerNames, chains: engine.chainDescriptions,
                stateFile: stateFile.map { ($0.bootID, $0.pid) }
            ))
            reply.clientFailOpen = failOpen
            return reply
        case .acquire(let breaker, let cost, let timeoutMs):
            guard let waiter else {
                return Reply(bytes: ResponseEncoder.decision(id, try engine.acquire(breaker, cost: cost, owner: owner)))
            }
            // Answered a tenth before the client's own deadline, so a full queue is never mistaken for a dead sidecar.
            let waitAtMost = timeoutMs.map { Duration.milliseconds($0) * 9 / 10 }
            switch try engine.acquire(breaker, cost: cost, owner: owner, orWait: waiter, waitAtMost: waitAtMost) {
            case .decided(let decision):
                return Reply(bytes: ResponseEncoder.decision(id, decision))
            case .queued(let ticket):
                pendingWait = ticket
                pendingID = id
                return Reply(bytes: [], queued: ticket)
            }
        case .route(let chain, let exclude, let cost, let requires):
            let decision = try engine.route(chain, exclude: exclude, requires: requires, cost: cost, owner: owner)
            var reply = Reply(bytes: ResponseEncoder.route(id, decision))
            reply.chain = chain
            return reply
        case .report(let permit, let report):
            return Reply(bytes: ResponseEncoder.state(id, try engine.report(permit, redacted(report))))
        case .renew(let permit):
            return Reply(bytes: ResponseEncoder.renewed(id, deadline: try engine.renew(permit)))
        case .record(let breaker, let report, let generation):
            let state = try engine.record(breaker, redacted(report), generation: generation)
            return Reply(bytes: envelope.reply ? ResponseEncoder.state(id, state) : [])
        case .status(let breaker):
            return Reply(bytes: ResponseEncoder.status(id, try engine.snapshot(breaker)))
        case .force(let breaker, let mode, let reason, let local):
            let state = try engine.force(breaker, mode, local: local)
            logger.notice("operator_force", metadata: [
                "breaker": .string(breaker), "forced": .string(mode.rawValue), "operator_reason": .text(reason),
                "new_state": .string(state.rawValue),
            ])
            return Reply(bytes: ResponseEncoder.state(id, state))
        case .reset(let breaker, let local):
            let state = try engine.reset(breaker, local: local)
            logger.notice("operator_reset", metadata: ["breaker": .string(breaker), "new_state": .string(state.rawValue)])
            return Reply(bytes: ResponseEncoder.state(id, state))
        case .subscribe:
            return Reply(bytes: ResponseEncoder.ok(id), subscribe: true)
        case .ping:
            return Reply(bytes: ResponseEncoder.ok(id))
        }
    }

    private func redacted(_ report: CallReport) -> CallReport {
        guard redactErrors, let error = report.error else { return report }
        var report = report
        report.error = SecretRedactor.redact(error)
        return report
    }

    /// The answer to this connection's queued acquire, now that it came.
    public func answerQueued(_ decision: Decision) -> [UInt8] {
        defer {
            pendingWait = nil
            pendingID = nil
        }
        return ResponseEncoder.decision(pendingID, decision)
    }

    /// The client went away: withdraws a queued acquire and releases up to
    /// `atMost` of the permits still held; true once none are left.
    public func releaseSome(atMost: Int = 256) -> Bool {
        if let ticket = pendingWait, engine.cancelWait(ticket) { pendingWait = nil }
        return engine.releaseOwned(by: owner, atMost: atMost)
    }

    /// Releases everything at once (tests and the fuzzer; the server goes step by step).
    public func releaseAll() {
        while !releaseSome() {}
    }

    static func wireError(_ error: EngineError) -> WireError {
        switch error {
        case .unknownBreaker: return WireError(.unknownBreaker, "\(error)")
        case .unknownChain: return WireError(.unknownChain, "\(error)")
        case .unknownPermit: return WireError(.unknownPermit, "\(error)")
        case .tooManyPermits, .permitLimit: return WireError(.overloaded, "\(error); report or release some first")
        case .unknownOwner: return WireError(.overloaded, "\(error)")
        case .invalidConfiguration: return WireError(.badRequest, "\(error)")
        }
    }
}
