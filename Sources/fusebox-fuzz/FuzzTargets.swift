import FuseboxConfig
import FuseboxCore
import FuseboxServer
import FuseboxWire

/// The two fuzz targets. Each must never trap on any input; where an answer
/// can be checked against a property, a violation traps on purpose so the
/// fuzzer reports it.
enum FuzzTargets {
    /// Protocol: the input is a connection's byte stream, split at newlines
    /// as the server frames it; every line goes through the real decoder and
    /// dispatcher against a real engine (manual clock). Every answer must be
    /// one line holding one JSON object with `ok`.
    static func protocolStream(_ data: UnsafeRawBufferPointer) {
        let clock = ManualClock()
        // "b" has every budget, so refusals, queueing and token settling are fuzzed too.
        var budgeted = BreakerPolicy()
        budgeted.budget = BudgetPolicy(
            maxInFlight: 2, queue: QueuePolicy(max: 3, timeout: .seconds(10)),
            rate: RateLimit(amount: 20, per: .seconds(1)), tokens: RateLimit(amount: 500, per: .seconds(1))
        )
        guard let engine = try? Engine(
            configuration: EngineConfiguration(
                breakers: [BreakerDefinition(name: "a"), BreakerDefinition(name: "b", policy: budgeted)],
                chains: [ChainDefinition(name: "c", breakers: ["a", "b"])]
            ),
            clock: clock, seed: 1
        ) else { fatalError("engine") }
        let user = ConnectionSession(engine: engine, isAdmin: false, serverName: "fuzz")
        let admin = ConnectionSession(engine: engine, isAdmin: true, serverName: "fuzz")
        // As the NIO handler does: a queued acquire's answer comes later, and
        // the connection serves nothing else until it has come.
        let answers = QueuedAnswers()
        user.waitResume = { id in { decision in answers.add(id, decision) } }
        var userWaiting = false
        func deliver() {
            for (id, decision) in answers.take() {
                check(user.answerQueued(id, decision))
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
            let reply = (lineNumber % 3 == 0 || userWaiting ? admin : user).handle(line)
            if reply.queued != nil {
                guard reply.bytes.isEmpty else { fatalError("a queued acquire was also answered at once") }
                userWaiting = true
            } else {
                check(reply.bytes)
            }
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

    static func check(_ bytes: [UInt8]) {
        guard bytes.last == 0x0A, !bytes.dropLast().contains(0x0A) else { fatalError("an answer is not exactly one line") }
        let parsed = bytes.dropLast().withUnsafeBytes { try? JSONParser.parse($0) }
        guard let parsed, case .bool? = parsed["ok"] else { fatalError("an answer is not a JSON object with ok") }
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
        default: protocolStream(data)
        }
    }
}

/// Queued answers the engine handed over, kept until the target delivers them
/// (single-threaded: the engine calls back on the thread that freed a slot).
final class QueuedAnswers: @unchecked Sendable {
    private var pending: [(RequestID?, Decision)] = []

    func add(_ id: RequestID?, _ decision: Decision) { pending.append((id, decision)) }

    func take() -> [(RequestID?, Decision)] {
        defer { pending.removeAll() }
        return pending
    }
}
