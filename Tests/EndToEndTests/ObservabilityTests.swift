import Foundation
import FuseboxWire
import Testing
import FuseboxJSON

@Suite("fusebox serve: logs and HTTP endpoints")
struct ObservabilityTests {
    static let hostile = [
        #"quote " and backslash \ and "{\"json\":true}""#,
        "new\nline and carriage\rreturn",
        "nul \u{0} bell \u{7} escape \u{1B}[31m red",
        "line separator \u{2028} paragraph \u{2029} emoji 😀",
        String(repeating: "0123456789", count: 1_000),
    ]

    @Test func hostileErrorTextsBecomeWellFormedTruncatedLogLines() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        let admin = try sidecar.connect(admin: true)
        for text in Self.hostile {
            var encoded: [UInt8] = []
            JSONWriter.appendString(text, to: &encoded)
            let error = String(decoding: encoded, as: UTF8.self)
            for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":\#(error)}"#) }
            _ = try admin.ok(#"{"op":"reset","breaker":"openai"}"#)
        }
        // Invalid UTF-8 never reaches a log line: it is refused at the protocol.
        try client.write(Array(#"{"op":"record","breaker":"openai","status":503,"error":""#.utf8) + [0xFF] + Array("\"}\n".utf8))
        #expect(try JSONParser.parse(try #require(try client.readLine()))["error"]?["code"] == .string("bad_json"))

        try waitUntil("every trip is logged") {
            sidecar.logEvents("transition").filter { $0["new_state"] == .string("open") }.count == Self.hostile.count
        }
        for line in sidecar.logLines {
            #expect((try? JSONParser.parse(line)) != nil, "not one JSON object: \(line.prefix(200))")
        }
        let trips = sidecar.logEvents("transition").filter { $0["new_state"] == .string("open") }
        for (trip, text) in zip(trips, Self.hostile) {
            guard case .string(let logged)? = trip["last_error"] else { Issue.record("no last_error"); continue }
            if text.utf8.count <= WireLimits.maxErrorBytes {
                #expect(logged == text)
            } else {
                #expect(logged.utf8.count <= WireLimits.maxErrorBytes)
                #expect(logged.hasSuffix("…") && text.hasPrefix(String(logged.dropLast())))
            }
            for field in ["event", "breaker", "old_state", "new_state", "failure_count", "timestamp", "reason",
                          "failure_rate", "calls_in_window", "last_status", "open_until", "generation", "instance"] {
                #expect(trip[field] != nil, "missing \(field)")
            }
        }
    }

    @Test func textLogFormatIsOneReadableLinePerEvent() throws {
        let sidecar = try SidecarProcess(arguments: ["--log-format", "text"], waitForSocket: false)
        try waitUntil("the socket appears") { FileManager.default.fileExists(atPath: sidecar.socket) }
        let client = try sidecar.connect()
        for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":"two\nlines"}"#) }
        try waitUntil("the transition is logged") { sidecar.logLines.contains { $0.contains("transition") } }
        let line = try #require(sidecar.logLines.first { $0.contains("transition") })
        #expect(line.contains("breaker=openai") && line.contains(" warn "))
        #expect(line.contains(#"last_error="two\nlines""#))
        #expect(line.contains("new_state=open"))
    }

    @Test func httpServesHealthReadinessAndBreakers() throws {
        let config = SidecarProcess.config().replacingOccurrences(of: "http: off", with: "http: 127.0.0.1:0")
        let sidecar = try SidecarProcess(config: config)
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        guard case .string(let address)? = sidecar.logEvents("http_listening").first?["address"] else {
            Issue.record("no address logged"); return
        }
        let base = "http://\(address)"
        let health = try fetch(base + "/healthz")
        #expect(health.status == 200 && health.body.contains(#""status":"ok""#))
        let ready = try fetch(base + "/readyz")
        #expect(ready.status == 200)
        #expect(try JSONParser.parse(ready.body)["checks"]?["socket"] == .string("ok"))
        let breakers = try JSONParser.parse(try fetch(base + "/v1/breakers").body)
        guard case .array(let list)? = breakers["breakers"] else { Issue.record("no breakers"); return }
        #expect(list.count == 4)
        let metrics = try fetch(base + "/metrics")
        #expect(metrics.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(metrics.body.contains(#"fusebox_breaker_state{breaker="openai",state="closed"} 1"#))
        #expect(metrics.body.contains("# HELP fusebox_calls_total"))
        #expect(try fetch(base + "/nothing-here").status == 404)
    }

    func fetch(_ url: String) throws -> (status: Int, body: String, contentType: String?) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}\n%{content_type}", url]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        let type = lines.popLast()
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, lines.joined(separator: "\n"), type)
    }
}
