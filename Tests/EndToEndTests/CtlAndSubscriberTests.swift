import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox ctl and slow subscribers")
struct CtlAndSubscriberTests {
    @Test func ctlShowsForcesAndResetsBreakers() throws {
        let sidecar = try SidecarProcess()
        let socketArgs = ["--socket", sidecar.socket, "--admin-socket", sidecar.adminSocket]
        let forced = try FuseboxBinary.run(["ctl", "force", "openai", "open", "--reason", "drill"] + socketArgs)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdout == "openai: forced_open\n")
        let status = try FuseboxBinary.run(["ctl", "status"] + socketArgs)
        #expect(status.status == 0)
        let lines = status.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("BREAKER") == true)
        #expect(lines.contains { $0.hasPrefix("openai") && $0.contains("forced_open") })
        #expect(lines.contains { $0.hasPrefix("anthropic") && $0.contains("closed") })
        let reset = try FuseboxBinary.run(["ctl", "reset", "openai"] + socketArgs)
        #expect(reset.stdout == "openai: closed\n")
        let unknown = try FuseboxBinary.run(["ctl", "status", "nope"] + socketArgs)
        #expect(unknown.status == 3)
        #expect(unknown.stderr.contains("unknown_breaker"))
        let json = try FuseboxBinary.run(["ctl", "status", "openai", "--json"] + socketArgs)
        #expect(try JSONParser.parse(json.stdout.trimmingCharacters(in: .whitespacesAndNewlines))["ok"] == .bool(true))
    }

    @Test func ctlSaysWhenNoSidecarIsRunning() throws {
        let folder = try TemporaryFolder()
        let result = try FuseboxBinary.run(["ctl", "status", "--socket", folder.url.appendingPathComponent("none.sock").path])
        #expect(result.status == 69)
        #expect(result.stderr.contains("is `fusebox serve` running?"))
    }

    @Test func aSubscriberThatNeverReadsIsToldWhatItMissedAndNeverSlowsDecisions() throws {
        let sidecar = try SidecarProcess()
        let sleeper = try sidecar.connect()
        _ = try sleeper.ok(#"{"op":"subscribe"}"#)
        // Thousands of transitions while the subscriber reads nothing.
        let admin = try sidecar.connect(admin: true)
        var batch: [UInt8] = []
        for _ in 0..<4_000 {
            batch += Array((#"{"op":"force","breaker":"openai","state":"open"}"# + "\n" + #"{"op":"force","breaker":"openai","state":"auto"}"# + "\n").utf8)
        }
        try admin.write(batch)
        for _ in 0..<8_000 { _ = try #require(try admin.readLine()) }
        // Decisions went on at once for everybody else.
        _ = try sidecar.connect().ok(#"{"op":"acquire","breaker":"anthropic"}"#)
        // Now read: the stream has transitions and, where the buffer was full, a dropped count.
        var transitions = 0
        var dropped = 0
        sleeper.setTimeout(.seconds(2))
        while let line = try? sleeper.readLine() {
            let event = try JSONParser.parse(line)
            if event["event"] == .string("transition") { transitions += 1 }
            if event["event"] == .string("dropped"), case .number(let n)? = event["count"] { dropped += Int(n) ?? 0 }
            if transitions + dropped >= 8_000 { break }
        }
        #expect(dropped > 0, "the buffer should have filled")
        #expect(transitions > 0)
        #expect(transitions + dropped == 8_000, "every transition is either delivered or counted as dropped")
    }
}
