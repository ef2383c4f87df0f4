import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox serve: protocol v1 over a real socket")
struct ServeProtocolTests {
    @Test func helloNamesTheServerBreakersAndChains() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        let hello = try client.ok(#"{"op":"hello","protocol":1,"client":"e2e","id":"h1"}"#)
        #expect(hello["id"] == .string("h1"))
        #expect(hello["protocol"] == .number("1"))
        #expect(hello["breakers"] == .array(["openai", "anthropic", "ollama", "shortlease"].map { .string($0) }))
        #expect(hello["chains"]?["llm"] == .array([.string("openai"), .string("anthropic"), .string("ollama")]))
        #expect(hello["strategies"]?["llm"] == .string("ordered"))
        guard case .string(let server)? = hello["server"] else { Issue.record("no server"); return }
        #expect(server.hasPrefix("fusebox "))
        let wrong = try client.request(#"{"op":"hello","protocol":2}"#)
        #expect(wrong["error"]?["code"] == .string("unsupported_protocol"))
    }

    @Test func failuresOpenTheBreakerAndAProbeClosesItThroughHalfOpen() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        for _ in 0..<3 {
            let permit = try client.permit("openai")
            _ = try client.ok(#"{"op":"report","permit":"\#(permit)","status":503,"error":"upstream down","latency_ms":12}"#)
        }
        let refused = try client.ok(#"{"op":"acquire","breaker":"openai"}"#)
        #expect(refused["allowed"] == .bool(false))
        #expect(refused["state"] == .string("open"))
        guard case .number(let retry)? = refused["retry_in_ms"], let ms = Int(retry) else { Issue.record("no retry_in_ms"); return }
        #expect(ms > 0 && ms <= 400)
        // The timer turns it half-open without traffic.
        try waitUntil("openai turns half-open") { try client.state("openai") == "half_open" }
        let probe = try client.ok(#"{"op":"acquire","breaker":"openai"}"#)
        #expect(probe["probe"] == .bool(true))
        #expect(try client.ok(#"{"op":"acquire","breaker":"openai"}"#)["allowed"] == .bool(false))
        guard case .string(let permit)? = probe["permit"] else { Issue.record("no probe permit"); return }
        let closed = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
        #expect(closed["state"] == .string("closed"))
        try waitUntil("three transitions are logged") { sidecar.logEvents("transition").count >= 3 }
        let logged = sidecar.logEvents("transition")
        #expect(logged.map { $0["new_state"] } == [.string("open"), .string("half_open"), .string("closed")])
        #expect(logged.first?["failure_count"] == .number("3"))
        #expect(logged.first?["last_error"] == .string("upstream down"))
        #expect(logged.first?["last_status"] == .number("503"))
        #expect(logged.first?["instance"] == .string("e2e"))
    }

    @Test func routeFallsBackFromAnOpenBreakerAndSaysWhatItSkipped() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":500}"#) }
        let route = try client.ok(#"{"op":"route","chain":"llm","id":9}"#)
        #expect(route["id"] == .number("9"))
        #expect(route["allowed"] == .bool(true))
        #expect(route["breaker"] == .string("anthropic"))
        guard case .array(let skipped)? = route["skipped"] else { Issue.record("no skipped"); return }
        #expect(skipped.count == 1)
        #expect(skipped.first?["breaker"] == .string("openai"))
        #expect(skipped.first?["state"] == .string("open"))
        guard case .number? = skipped.first?["retry_in_ms"] else { Issue.record("no retry_in_ms"); return }
        let excluded = try client.ok(#"{"op":"route","chain":"llm","exclude":["anthropic"]}"#)
        #expect(excluded["breaker"] == .string("ollama"))
    }

    @Test func athousandPipelinedRequestsAreAnsweredInOrder() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        var batch = ""
        for i in 0..<1_000 {
            batch += i % 2 == 0 ? #"{"op":"acquire","breaker":"anthropic","id":\#(i)}"# : #"{"op":"ping","id":"\#(i)"}"#
            batch += "\n"
        }
        try client.write(Array(batch.utf8))
        for i in 0..<1_000 {
            let line = try #require(try client.readLine())
            let answer = try JSONParser.parse(line)
            #expect(answer["id"] == (i % 2 == 0 ? .number("\(i)") : .string("\(i)")))
            #expect(answer["ok"] == .bool(true))
        }
    }

    @Test func twoConnectionsShareOneBreaker() throws {
        let sidecar = try SidecarProcess()
        let first = try sidecar.connect()
        let second = try sidecar.connect()
        for client in [first, second, first] {
            let permit = try client.permit("anthropic")
            _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"timeout"}"#)
        }
        #expect(try second.state("anthropic") == "open")
        #expect(try first.ok(#"{"op":"acquire","breaker":"anthropic"}"#)["allowed"] == .bool(false))
        // A permit may be reported from another connection.
        let permit = try first.permit("ollama")
        #expect(try second.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)["state"] == .string("closed"))
    }

    @Test func aDisconnectReleasesItsPermitsAndFreesTheProbeSlot() throws {
        let sidecar = try SidecarProcess()
        let watcher = try sidecar.connect()
        for _ in 0..<3 { _ = try watcher.ok(#"{"op":"record","breaker":"ollama","status":503}"#) }
        try waitUntil("ollama turns half-open") { try watcher.state("ollama") == "half_open" }
        do {
            let leaving = try sidecar.connect()
            _ = try leaving.permit("ollama")  // the probe
            _ = try leaving.permit("openai")
            #expect(try watcher.field("ollama", "probes_in_flight") == .number("1"))
        }  // closed here
        try waitUntil("the permits are released") {
            try watcher.field("ollama", "permits_in_flight") == .number("0")
                && watcher.field("openai", "permits_in_flight") == .number("0")
        }
        let probe = try watcher.ok(#"{"op":"acquire","breaker":"ollama"}"#)
        #expect(probe["probe"] == .bool(true))
    }

    @Test func anExpiredLeaseFreesTheProbeSlot() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"shortlease","status":503}"#) }
        try waitUntil("shortlease turns half-open") { try client.state("shortlease") == "half_open" }
        _ = try client.permit("shortlease")  // the probe, never reported
        #expect(try client.ok(#"{"op":"acquire","breaker":"shortlease"}"#)["allowed"] == .bool(false))
        // The lease (300 ms) runs out: a timeout, the breaker reopens, and its next half-open has a free slot.
        try waitUntil("the expired probe reopens it") {
            sidecar.logEvents("transition").contains { $0["reason"] == .string("probe_timeout") }
        }
        try waitUntil("a new probe is admitted") {
            try client.request(#"{"op":"acquire","breaker":"shortlease"}"#)["probe"] == .bool(true)
        }
    }

    @Test func subscribersReceiveTransitions() throws {
        let sidecar = try SidecarProcess()
        let subscriber = try sidecar.connect()
        _ = try subscriber.ok(#"{"op":"subscribe","events":["transition"],"id":"s"}"#)
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"anthropic","status":429}"#) }
        let event = try JSONParser.parse(try #require(try subscriber.readLine()))
        #expect(event["event"] == .string("transition"))
        #expect(event["breaker"] == .string("anthropic"))
        #expect(event["old_state"] == .string("closed"))
        #expect(event["new_state"] == .string("open"))
        #expect(event["reason"] == .string("consecutive_failures"))
        #expect(event["last_status"] == .number("429"))
        guard case .string? = event["open_until"], case .string? = event["timestamp"] else { Issue.record("missing times"); return }
        let next = try JSONParser.parse(try #require(try subscriber.readLine()))
        #expect(next["new_state"] == .string("half_open"))
    }

    @Test func adminOpsAreRefusedOnTheMainSocketAndAllowedOnTheAdminSocket() throws {
        let sidecar = try SidecarProcess()
        let main = try sidecar.connect()
        for op in [#"{"op":"force","breaker":"openai","state":"open","id":1}"#, #"{"op":"reset","breaker":"openai"}"#] {
            let answer = try main.request(op)
            #expect(answer["error"]?["code"] == .string("forbidden"))
        }
        #expect(try main.state("openai") == "closed")
        let admin = try sidecar.connect(admin: true)
        #expect(try admin.ok(#"{"op":"force","breaker":"openai","state":"open","reason":"drill"}"#)["state"] == .string("forced_open"))
        #expect(try main.ok(#"{"op":"acquire","breaker":"openai"}"#)["allowed"] == .bool(false))
        #expect(try admin.ok(#"{"op":"reset","breaker":"openai"}"#)["state"] == .string("closed"))
        try waitUntil("the force is logged with its reason") {
            sidecar.logEvents("operator_force").first?["operator_reason"] == .string("drill")
        }
        // The admin socket serves every other op too.
        #expect(try admin.ok(#"{"op":"acquire","breaker":"openai"}"#)["allowed"] == .bool(true))
    }
}
