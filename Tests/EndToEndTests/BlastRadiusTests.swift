import Foundation
import FuseboxJSON
import FuseboxStateFile
import FuseboxSocket
import Testing

/// docs/security.md, "One file, one reload or one slow endpoint": each
/// finding of that pass replayed against the real binary, named after its item.
@Suite("Blast radius: a file, a reload, a slow endpoint", .serialized)
struct BlastRadiusTests {
    static func breakers(_ count: Int) -> String {
        "breakers:\n" + (0..<count).map { "  b\($0): {}\n" }.joined()
    }

    static func config(breakers count: Int) -> String {
        """
        socket: ./fusebox.sock
        admin_socket: ./fusebox-admin.sock
        http: off
        store: off
        instance: e2e
        \(breakers(count))
        """
    }

    static func stateFile(_ sidecar: SidecarProcess) throws -> StateFileContents {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: sidecar.socket + ".state"))
        return try #require(StateFileContents(bytes), "the state file reads back")
    }

    static func reload(_ sidecar: SidecarProcess, to config: String) throws {
        let before = sidecar.logEvents("config_reloaded").count
        try config.write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the reload is applied") { sidecar.logEvents("config_reloaded").count > before || !sidecar.process.isRunning }
    }

    @Test func item1_aReloadPastTheStateFilesSlotsGrowsTheFileAndShrinkingBackEmptiesIt() throws {
        let sidecar = try SidecarProcess(config: Self.config(breakers: 3))
        let first = try Self.stateFile(sidecar)
        #expect(first.slotCount == 256 && first.slots.count == 3)

        try Self.reload(sidecar, to: Self.config(breakers: 300))
        #expect(sidecar.process.isRunning, "the sidecar survives a reload past its slots: \(sidecar.standardError.suffix(400))")
        let grown = try Self.stateFile(sidecar)
        #expect(grown.slotCount >= 300)
        #expect(grown.bootID == first.bootID && grown.pid == first.pid, "the same sidecar, not a restart")
        #expect(Set(grown.slots.map(\.name)) == Set((0..<300).map { "b\($0)" }), "every breaker is posted, the new ones too")
        #expect(grown.slots.allSatisfy { $0.state == 1 && $0.flags & 1 == 1 })
        #expect(!sidecar.logEvents("fast_path_state_file_grown").isEmpty)
        let client = try sidecar.connect()
        #expect(try client.state("b299") == "closed")

        try Self.reload(sidecar, to: Self.config(breakers: 3))
        #expect(sidecar.process.isRunning)
        #expect(try Self.stateFile(sidecar).slots.map(\.name) == ["b0", "b1", "b2"])
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
    }

    @Test func item2_aFIFOSquattingTheSidecarsNameInDevShmNeitherHangsStartNorIsTouched() throws {
        let fifo = "/dev/shm/fusebox-\(getuid())-squat\(UInt32.random(in: 0 ... .max)).state"
        #expect(mkfifo(fifo, 0o666) == 0)
        defer { unlink(fifo) }
        let sidecar = try SidecarProcess(waitForSocket: false)
        defer { if sidecar.process.isRunning { sidecar.signal(SIGKILL) } }  // a hung one ignores SIGTERM
        let started = (try? waitUntil("the sidecar starts") { !sidecar.logEvents("started").isEmpty }) != nil
        try #require(started, "start hung on the FIFO")
        let client = try sidecar.connect()
        _ = try client.ok(#"{"op":"ping"}"#)
        var info = stat()
        #expect(lstat(fifo, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO, "the FIFO is left alone")
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit(timeout: 5) == 0, "SIGTERM is answered")
    }

    @Test func item4_aLeftoverLinkIntoAnotherFileIsReplacedWithoutDeletingItsTarget() throws {
        let folder = try TemporaryFolder()
        let victim = try folder.write("precious.txt", "keep me\n")
        // Whatever a link's text starts with, only the sidecar's own regular file in /dev/shm is removed.
        let escape = "/dev/shm/fusebox-"
        mkdir(escape, 0o755)
        defer { rmdir(escape) }
        let target = escape + "/../../.." + victim.path  // /dev/shm/fusebox- → /dev/shm → /dev → /
        _ = try folder.write("fusebox.yaml", SidecarProcess.config())
        #expect(symlink(target, folder.url.appendingPathComponent("fusebox.sock.state").path) == 0)
        let sidecar = try SidecarProcess(preparedFolder: folder, waitForSocket: true)
        #expect(FileManager.default.fileExists(atPath: victim.path), "the link's target was not deleted")
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me\n")
        let placed = try FileManager.default.destinationOfSymbolicLink(atPath: sidecar.socket + ".state")
        #expect(placed.hasPrefix("/dev/shm/fusebox-\(getuid())-"), "the sidecar's own file took the link's place")
    }

    static let secret = "s3cretT0kenValue42"

    @Test func item5_credentialsAfterAnAuthSchemeAreMaskedInStatusLogStoreAndHTTP() throws {
        let secret = Self.secret
        let forms = [
            "upstream said: Authorization: Bearer \(secret)",
            "Proxy-Authorization: Basic \(secret)==",
            "authorization=Bearer \(secret)",
            "{\"authorization\": \"Token \(secret)\"}",
            "headers: Authorization: bearer \(secret), retry",
        ]
        let config = """
            socket: ./fusebox.sock
            http: 127.0.0.1:0
            store: ./fusebox.db
            instance: e2e
            defaults:
              trip: { consecutive_failures: 3, window: off }
            \(Self.breakers(forms.count))
            """
        let sidecar = try SidecarProcess(config: config)
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        guard case .string(let address)? = sidecar.logEvents("http_listening").first?["address"] else {
            throw Timeout(description: "no http address logged")
        }
        let client = try sidecar.connect()
        for (index, form) in forms.enumerated() {
            let error = String(decoding: try JSONSerialization.data(withJSONObject: form, options: .fragmentsAllowed), as: UTF8.self)
            for _ in 0..<3 { _ = try client.ok(#"{"op":"record","breaker":"b\#(index)","status":503,"error":\#(error)}"#) }
            guard case .string(let shown)? = try client.field("b\(index)", "last_error") else { throw Timeout(description: "no last_error for \(form)") }
            #expect(!shown.contains(Self.secret) && shown.contains("[REDACTED]"), "status shows \(shown) for form \(index)")
        }
        let breakers = try curl("http://\(address)/v1/breakers")
        #expect(breakers.status == 200 && breakers.body.contains("[REDACTED]") && !breakers.body.contains(Self.secret), "/v1/breakers")
        try waitUntil("the store has the transitions") {
            (try? run(["sqlite3", sidecar.folder.url.appendingPathComponent("fusebox.db").path, "SELECT count(*) FROM transitions"]).out)
                .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0 >= forms.count
        }
        let store = sidecar.folder.url.appendingPathComponent("fusebox.db").path
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        let rows = try run(["sqlite3", store, "SELECT last_error FROM transitions; SELECT error FROM failures;"]).out
        #expect(rows.contains("[REDACTED]") && !rows.contains(Self.secret), "the store: \(rows)")
        let logged = sidecar.logLines.filter { $0.contains("last_error") }
        #expect(!logged.isEmpty && !logged.contains { $0.contains(Self.secret) }, "the log")
    }

    @Test func item6_twoHangingProbeEndpointsNeverDelayTheProbesOfFourHealthyOnes() throws {
        let stub = try ProviderStub()
        let healthy = (1...4).map { "ok\($0)" }
        var yaml = """
            socket: ./fusebox.sock
            http: off
            store: off
            instance: e2e
            breakers:

            """
        for name in ["hang1", "hang2"] + healthy {
            let path = name.hasPrefix("hang") ? "/hang/\(name)" : "/v1/\(name)"
            yaml += "  \(name):\n    probe: { http: { url: \"\(stub.base)\(path)\", timeout: 400ms }, closed_interval: 1s }\n"
        }
        let sidecar = try SidecarProcess(config: yaml)
        try waitUntil("both hanging endpoints were found dead", timeout: 10) {
            sidecar.logEvents("transition").filter { $0["breaker"] == .string("hang1") || $0["breaker"] == .string("hang2") }
                .count >= 2
        }
        // Six more rounds of probing while both hang (healthy checks every second, hanging ones every open
        // period): waited for by the stub's count, not by the clock.
        let before = try stub.requests()
        try waitUntil("six more rounds of healthy probes", timeout: 30) { try stub.requests() >= before + 4 * 6 }
        let opened = sidecar.logEvents("transition").compactMap { line -> String? in
            guard case .string(let name)? = line["breaker"], healthy.contains(name) else { return nil }
            return name
        }
        #expect(opened.isEmpty, "healthy breakers opened: \(opened)")
        let client = try sidecar.connect()
        for name in healthy { #expect(try client.state(name) == "closed") }
        #expect(try stub.requests() >= before + 4 * 6, "the healthy endpoints were probed all along")
    }

    @Test func item7_analyzeEscapesBreakerAndInstanceNamesInTextAndMarkdown() throws {
        let folder = try TemporaryFolder()
        let store = folder.url.appendingPathComponent("sim.db").path
        #expect(try run([FuseboxBinary.url.path, "simulate", "--store", store, "--duration", "10m"]).status == 0)
        let hostile = "'ev' || char(27) || '[2J' || char(10) || '# pwned |`x'"
        var sql = ""
        for table in ["transitions", "traffic", "traffic_minutely", "traffic_hourly", "failures"] {
            sql += "UPDATE \(table) SET breaker = \(hostile) || breaker, instance = \(hostile) || instance; "
        }
        sql += "UPDATE runs SET instance = \(hostile) || instance; "
        sql += "UPDATE routes SET instance = \(hostile) || instance, chain = \(hostile) || chain, from_breaker = \(hostile) || from_breaker, "
            + "to_breaker = CASE to_breaker WHEN '' THEN '' ELSE \(hostile) || to_breaker END; "
        let altered = try run(["sqlite3", store, sql])
        #expect(altered.status == 0, "\(altered.err)")
        for format in ["text", "markdown"] {
            let analyzed = try run([FuseboxBinary.url.path, "analyze", "--db", store, "--format", format])
            #expect(analyzed.status == 0, "\(format): \(analyzed.err)")
            #expect(!analyzed.out.contains("\u{1B}"), "\(format) prints an escape character raw")
            #expect(analyzed.out.contains("\\x1b[2J"), "\(format) shows it escaped")
            #expect(!analyzed.out.split(separator: "\n").contains { $0.hasPrefix("# pwned") }, "\(format): a name starts a line of its own")
        }
    }

    @Test func item8_checkShowsControlCharactersOfAHostileConfigEscaped() throws {
        let folder = try TemporaryFolder()
        let file = try folder.write("hostile.yaml", "breakers:\n  \"bad\\e[31mname\\n# forged\": {}\n")
        let checked = try run([FuseboxBinary.url.path, "check", "--config", file.path])
        #expect(checked.status != 0)
        #expect(!checked.err.contains("\u{1B}") && checked.err.contains("\\x1b[31m"), "check: \(checked.err)")
        #expect(checked.err.split(separator: "\n").count == 1, "one line: \(checked.err)")
    }
}
