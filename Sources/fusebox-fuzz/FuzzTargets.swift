import FuseboxConfig
import FuseboxCore
import FuseboxServer
import FuseboxWire
import FuseboxJSON

/// The fuzz targets (`StateFileFuzzTarget` has its own file). Each must never trap on any input; where an answer
/// can be checked against a property, a violation traps on purpose so the
/// fuzzer reports it.
enum FuzzTargets {
    /// Protocol: the input is a connection's byte stream, split at newlines
    /// as the server frames it; every line goes through the real decoder and
    /// dispatcher against a real engine (manual clock). Every answer must be
    /// one line holding one JSON object with `ok`, and the engine's bounds
    /// hold after every line. Permit ids are random, so the two bytes `$p`
    /// in a line stand for the latest permit issued (seeds report with it).
    static func protocolStream(_ data: UnsafeRawBufferPointer) {
        let clock = ManualClock()
        // "b" has every budget over a second, "d" over a day, so refusals, queueing, token
        // settling and debts of every size are fuzzed too.
        var budgeted = BreakerPolicy()
        budgeted.budget = BudgetPolicy(
            maxInFlight: 2, queue: QueuePolicy(max: 3, timeout: .seconds(10)),
            rate: RateLimit(amount: 20, per: .seconds(1)), tokens: RateLimit(amount: 500, per: .seconds(1))
        )
        var daily = BreakerPolicy(permitTTL: .seconds(365 * 86_400))
        daily.budget = BudgetPolicy(
            maxInFlight: 1_000_000, rate: RateLimit(amount: 1, per: .seconds(86_400)),
            tokens: RateLimit(amount: 1_000, per: .seconds(86_400))
        )
        daily.open.honorRetryAfter = false
        guard let engine = try? Engine(
            configuration: EngineConfiguration(
                breakers: [
                    BreakerDefinition(name: "a"), BreakerDefinition(name: "b", policy: budgeted),
                    BreakerDefinition(name: "d", policy: daily),
                ],
                chains: [ChainDefinition(name: "c", breakers: ["a", "b", "d"])]
            ),
            clock: clock, seed: 1
        ) else { fatalError("engine") }
        var latestPermit: [UInt8] = Array("0".utf8)
        let user = ConnectionSession(engine: engine, isAdmin: false, serverName: "fuzz")
        let admin = ConnectionSession(engine: engine, isAdmin: true, serverName: "fuzz")
        // As the NIO handler does: a queued acquire's answer comes later, and
        // the connection serves nothing else until it has come.
        let answers = QueuedAnswers()
        user.waiter = answers
        var userWaiting = false
        func deliver() {
            for decision in answers.take() {
                check(user.answerQueued(decision), latestPermit: &latestPermit)
                userWaiting = false
            }
        }
        var start = 0
        var lineNumber = 0
        for index in 0...data.count where index == data.count || data[index] == 0x0A {
            let line = UnsafeRawBufferPointer(rebasing: data[start..<index])
            start = index + 1
            lineNumber += 1
            guard line.count <= WireLimits.maxLineBytes else { continue }
            let session = lineNumber % 3 == 0 || userWaiting ? admin : user
            substitutingPermit(line, latestPermit) { decodersAgree($0) }
            let reply = substitutingPermit(line, latestPermit) { session.handle($0) }
            if reply.queued != nil {
                guard reply.bytes.isEmpty else { fatalError("a queued acquire was also answered at once") }
                userWaiting = true
            } else {
                check(reply.bytes, latestPermit: &latestPermit)
            }
            checkBounds(engine, now: clock.now())
            deliver()
            if lineNumber % 5 == 0 {
                clock.advance(by: .seconds(7))
                engine.tick()
                deliver()
            }
        }
        user.releaseAll()
        deliver()          // answered before it could be withdrawn: its permit is now held…
        user.releaseAll()  // …and released with the rest
        admin.releaseAll()
        if engine.permitsInFlight != 0 { fatalError("permits leaked after both connections closed") }
    }

    /// The flat reading of a line and the tree's must give the same request or the same error.
    static func decodersAgree(_ line: UnsafeRawBufferPointer) {
        if RequestDecoder.decode(line) != RequestDecoder.decodeThroughTree(line) {
            fatalError("the flat and tree decoders disagree on a line")
        }
    }

    static func check(_ bytes: [UInt8], latestPermit: inout [UInt8]) {
        guard bytes.last == 0x0A, !bytes.dropLast().contains(0x0A) else { fatalError("an answer is not exactly one line") }
        let parsed = bytes.dropLast().withUnsafeBytes { try? JSONParser.parse($0) }
        guard let parsed, case .bool? = parsed["ok"] else { fatalError("an answer is not a JSON object with ok") }
        if case .string(let permit)? = parsed["permit"] { latestPermit = Array(permit.utf8) }
    }

    /// Runs `body` on the line with each `$p` replaced by the latest permit id.
    static func substitutingPermit<T>(_ line: UnsafeRawBufferPointer, _ permit: [UInt8], _ body: (UnsafeRawBufferPointer) -> T) -> T {
        guard line.count >= 2, zip(line, line.dropFirst()).contains(where: { $0 == 0x24 && $1 == 0x70 }) else { return body(line) }
        var out: [UInt8] = []
        var i = 0
        while i < line.count {
            if i + 1 < line.count, line[i] == 0x24, line[i + 1] == 0x70 {
                out += permit
                i += 2
            } else {
                out.append(line[i])
                i += 1
            }
        }
        return out.withUnsafeBytes(body)
    }

    /// What no sequence of requests may break: caps, and open periods within their cap.
    static func checkBounds(_ engine: Engine, now: Timestamp) {
        guard let snapshots = try? engine.snapshot() else { fatalError("snapshot") }
        for s in snapshots {
            if let cap = s.policy.budget.maxInFlight, s.permitsInFlight > cap { fatalError("\(s.name) is over max_in_flight") }
            if let until = s.openUntil, until > now + max(s.policy.open.backoffMax, s.policy.open.retryAfterCap, .seconds(60)) {
                fatalError("\(s.name) is open for longer than its cap")
            }
        }
    }

    /// Configuration: the input as YAML. Loading must not trap; a loaded
    /// configuration, written back by `fusebox check`'s renderer, must load
    /// back the same.
    static func configuration(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let loaded = try? ConfigLoader.load(yaml: text, file: "fuzz.yaml") else { return }
        let rendered = ConfigRenderer.yaml(loaded)
        guard let again = try? ConfigLoader.load(yaml: rendered, file: "rendered.yaml") else {
            fatalError("the rendered configuration does not load:\n\(rendered)")
        }
        guard again == loaded else { fatalError("the rendered configuration loads differently:\n\(rendered)") }
    }

    static func run(_ target: String, _ data: UnsafeRawBufferPointer) {
        switch target {
        case "config": configuration(data)
        case "statefile": StateFileFuzzTarget.run(data)
        default: protocolStream(data)
        }
    }
}

/// Queued answers the engine handed over, kept until the target delivers them
/// (single-threaded: the engine calls back on the thread that freed a slot).
final class QueuedAnswers: QueueWaiter, @unchecked Sendable {
    private var pending: [Decision] = []

    func answer(_ decision: Decision) { pending.append(decision) }

    func take() -> [Decision] {
        defer { pending.removeAll() }
        return pending
    }
}
