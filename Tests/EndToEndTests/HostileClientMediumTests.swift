import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

/// docs/security.md items 7 to 12, each attack replayed against the real binary.
@Suite("Hostile clients: items 7–12")
struct HostileClientMediumTests {
    @Test func item07_aReloadThatRevokesAUidClosesItsConnections() throws {
        let me = getuid()
        let other = me == 4_242 ? 4_343 : 4_242
        let sidecar = try SidecarProcess(config: SidecarProcess.config("allowed_uids: [\(me), \(other)]"))
        let client = try sidecar.connect()
        _ = try client.ok(#"{"op":"ping"}"#)
        try SidecarProcess.config("allowed_uids: [\(other)]").write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the revocation is logged") { !sidecar.logEvents("connections_revoked").isEmpty }
        #expect(try client.readLine() == nil, "the revoked uid's connection is closed")
        let again = try sidecar.connect()
        #expect(try JSONParser.parse(try #require(try again.readLine()))["error"]?["code"] == .string("forbidden"))
    }

    @Test func item08_aLineWithThousandsOfKeysCostsLinearTime() throws {
        let sidecar = try SidecarProcess()
        // 64 KiB lines: one with 6,000 distinct keys, one with a single long string; 30 of each.
        var keys = "{"
        for i in 0..<6_000 { keys += "\"k\(i)\":1," }
        keys += "\"op\":\"ping\"}"
        let plain = #"{"op":"ping","pad":""# + String(repeating: "x", count: keys.utf8.count - 30) + #""}"#
        func cpuFor(_ line: String) throws -> Int {
            let client = try sidecar.connect()
            let before = try ProcessProbe.cpuTicks(sidecar.pid)
            for _ in 0..<30 {
                try client.write(line)
                #expect(try JSONParser.parse(try #require(try client.readLine()))["ok"] == .bool(true))
            }
            return try ProcessProbe.cpuTicks(sidecar.pid) - before
        }
        let plainTicks = try cpuFor(plain)
        let keyTicks = try cpuFor(keys)
        // Quadratic, the keyed lines cost 250 ms each (750 ticks for 30); linear, about what the plain ones cost.
        #expect(keyTicks <= 10 * plainTicks + 30, "CPU ticks: \(keyTicks) for many keys, \(plainTicks) for one string")
    }

    @Test func item09_aFlappingClientIsHeldOpenAndStorageStaysBounded() throws {
        let config = SidecarProcess.config().replacingOccurrences(of: "store: off", with: "store: ./fusebox.db")
        let sidecar = try SidecarProcess(config: config)
        let client = try sidecar.connect()
        let end = Date().addingTimeInterval(3)
        var cycles = 0
        while Date() < end {
            _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"retry_after_ms":0}"#)
            let answer = try client.ok(#"{"op":"acquire","breaker":"openai"}"#)
            if let permit = answer["permit"]?.stringValue {
                _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
            }
            cycles += 1
        }
        let transitions = sidecar.logEvents("transition").count
        #expect(cycles > 500)
        #expect(transitions <= 20 + 2, "\(transitions) transitions in 3 s of flapping (cap 20 a minute)")
        try waitUntil("the hold is logged") { sidecar.logEvents("transitions_rate_limited").count == 1 }
        #expect(try client.state("openai") == "open")
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let stored = try run(["sqlite3", sidecar.folder.url.appendingPathComponent("fusebox.db").path, "SELECT count(*) FROM transitions"])
        #expect(Int(stored.out.trimmingCharacters(in: .whitespacesAndNewlines)) == transitions)
    }

    @Test func item10_anEmptyReloadIsRefusedAndADirectoryOrFIFOIsNoConfig() throws {
        let (sidecar, base) = try SidecarProcess.withHTTP()
        try "".write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the reload is refused") { !sidecar.logEvents("config_reload_failed").isEmpty }
        #expect(sidecar.logEvents("config_reload_failed").first?["error"]?.stringValue?.contains("is empty") == true)
        try "# only a comment\n".write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the second reload is refused") { sidecar.logEvents("config_reload_failed").count == 2 }
        #expect(try sidecar.connect().state("shortlease") == "closed", "the running breakers stay")
        let metrics = try curl(base + "/metrics").body
        #expect(metrics.contains(#"fusebox_config_reloads_total{result="failed"} 2"#))
        #expect(metrics.contains("fusebox_config_last_reload_successful 0"))

        let folder = try TemporaryFolder()
        let directory = try run([FuseboxBinary.url.path, "serve", "--config", folder.url.path], timeout: 10)
        #expect(directory.status != 0 && directory.err.contains("is a directory"))
        let fifo = folder.url.appendingPathComponent("config.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let served = try run([FuseboxBinary.url.path, "serve", "--config", fifo], timeout: 10)
        #expect(served.status != 0 && served.err.contains("is a FIFO"))
    }

    @Test func item11_sigtermFinishesWithinTheDrainTimeWhateverClientsDo() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("shutdown_timeout: 1s"))
        // A client that sends without ever reading: its answers back up until the sidecar stops reading it.
        let stuck = try sidecar.connect()
        stuck.setTimeout(.milliseconds(200))
        let flood = String(repeating: #"{"op":"status"}"# + "\n", count: 20_000)
        let writer = Thread { try? stuck.write(Array(flood.utf8)) }
        writer.start()
        // The sidecar is serving the flood (one answer read; the rest back up, as they should).
        try waitUntil("the sidecar answers the flood") { (try? stuck.readLine()) != nil }
        // And the config path replaced by a FIFO, then a reload.
        try FileManager.default.removeItem(at: sidecar.configFile)
        #expect(mkfifo(sidecar.configFile.path, 0o600) == 0)
        sidecar.signal(SIGHUP)
        try waitUntil("the FIFO reload is refused") { !sidecar.logEvents("config_reload_failed").isEmpty }
        let start = Date()
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit(timeout: 8)
        #expect(Date().timeIntervalSince(start) < 8)
        _ = stuck
    }

    @Test func item12_controlCharactersAreEscapedOnTerminalsAndInMarkdown() throws {
        let config = SidecarProcess.config().replacingOccurrences(of: "store: off", with: "store: ./fusebox.db")
        let sidecar = try SidecarProcess(config: config)
        let watch = Process()
        watch.executableURL = FuseboxBinary.url
        watch.arguments = ["ctl", "watch", "--socket", sidecar.socket]
        let watched = PipeText(), watchNotes = PipeText()
        watch.standardOutput = watched.pipe
        watch.standardError = watchNotes.pipe
        try watch.run()
        try waitUntil("ctl watch has subscribed") { watchNotes.value.contains("watching transitions") }
        let hostile = #"boom\u001b[2J\u001b]0;pwned\u0007\n# Injected heading\n| a | b |\u202e"#
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":"\#(hostile)"}"#) }
        let status = try run([FuseboxBinary.url.path, "ctl", "status", "--socket", sidecar.socket])
        try waitUntil("ctl watch printed the transition") { watched.value.contains("boom") }
        watch.terminate()
        watch.waitUntilExit()
        let watchOutput = watched.value
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let store = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        let text = try run([FuseboxBinary.url.path, "analyze", "--db", store, "--format", "text"]).out
        let markdown = try run([FuseboxBinary.url.path, "analyze", "--db", store, "--format", "markdown"]).out
        for (name, output) in [("ctl status", status.out), ("ctl watch", watchOutput), ("analyze text", text), ("analyze markdown", markdown)] {
            #expect(output.contains("boom"), "\(name) shows the error")
            #expect(!output.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E }, "\(name) holds a raw control character")
            #expect(!output.split(separator: "\n").contains { $0.hasPrefix("# Injected") }, "\(name) took a new line from the error")
        }
        #expect(markdown.contains(#"\x1b[2J"#))
    }
}
