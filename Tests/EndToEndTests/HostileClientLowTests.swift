import Foundation
import FuseboxWire
import Testing
import FuseboxSocket

/// docs/security.md items 13 to 18, each attack replayed against the real binary.
@Suite("Hostile clients: items 13–18")
struct HostileClientLowTests {
    @Test(arguments: [
        ("a time after 2262", "UPDATE transitions SET at_ms = 9300000000000000 WHERE id = (SELECT min(id) FROM transitions)"),
        ("text in at_ms", "UPDATE transitions SET at_ms = 'soon' WHERE id = (SELECT min(id) FROM transitions)"),
        ("INT64_MAX counts", "UPDATE traffic SET successes = 9223372036854775807"),
    ])
    func item13_analyzeRefusesAHostileStoreWithOneLineInsteadOfTrapping(what: String, sql: String) throws {
        let folder = try TemporaryFolder()
        let store = folder.url.appendingPathComponent("sim.db").path
        #expect(try run([FuseboxBinary.url.path, "simulate", "--store", store, "--duration", "10m"]).status == 0)
        #expect(try run([FuseboxBinary.url.path, "analyze", "--db", store]).status == 0)
        #expect(try run(["sqlite3", store, sql]).status == 0)
        let analyzed = try run([FuseboxBinary.url.path, "analyze", "--db", store])
        #expect(analyzed.status == 74, "\(what): exit \(analyzed.status)")
        let lines = analyzed.err.split(separator: "\n")
        #expect(lines.count == 1 && analyzed.err.contains("altered or damaged"), "\(what): \(analyzed.err)")
    }

    @Test func item14_hugeDurationsAreRefusedByCheck() throws {
        let folder = try TemporaryFolder()
        for (key, value) in [("permit_ttl", "100000d"), ("open", "{ duration: 400d }"), ("half_open", "{ max_wait: 9999999d }")] {
            let file = try folder.write("huge.yaml", "defaults:\n  \(key): \(value)\n")
            let checked = try run([FuseboxBinary.url.path, "check", "--config", file.path])
            #expect(checked.status != 0 && checked.err.contains("must be at most 365d"), "\(key): \(checked.err)")
        }
        let fine = try folder.write("fine.yaml", "defaults:\n  permit_ttl: 365d\n")
        #expect(try run([FuseboxBinary.url.path, "check", "--config", fine.path]).status == 0)
    }

    @Test func item15_checkRefusesFIFOsAndDevicesAndReadsLongChainsInLinearTime() throws {
        let folder = try TemporaryFolder()
        let fifo = folder.url.appendingPathComponent("config.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let fromFIFO = try run([FuseboxBinary.url.path, "check", "--config", fifo], timeout: 10)
        #expect(fromFIFO.status != 0 && fromFIFO.err.contains("is a FIFO"))
        let fromDevice = try run([FuseboxBinary.url.path, "check", "--config", "/dev/zero"], timeout: 10)
        #expect(fromDevice.status != 0 && fromDevice.err.contains("is a character device"))
        #expect(!fromDevice.err.contains("Success"))
        // 20,000 breakers in one chain: each member is looked up once (a set), not searched for.
        let names = (0..<20_000).map { "b\($0)" }
        let yaml = "breakers:\n" + names.map { "  \($0): {}\n" }.joined() + "chains:\n  all: [\(names.joined(separator: ", "))]\n"
        let file = try folder.write("long.yaml", yaml)
        #expect(try run([FuseboxBinary.url.path, "check", "--config", file.path], timeout: 120).status == 0)
    }

    @Test func item16_anotherClientsPermitCannotBeGuessed() throws {
        let sidecar = try SidecarProcess()
        let victim = try sidecar.connect()
        let attacker = try sidecar.connect()
        let permit = try victim.permit("openai")
        // The attacker takes a permit of its own just after, and guesses the ids that came before it, as
        // the old serial<<24|slot scheme allowed: earlier serials, nearby slots.
        let own = try #require(UInt64(try attacker.permit("anthropic"), radix: 16))
        let serial = own >> 24
        var guesses: [UInt64] = []
        for back in 1...8 where serial > UInt64(back) {
            for slot in 0..<16 { guesses.append(((serial - UInt64(back)) << 24) | UInt64(slot)) }
        }
        for guess in guesses {
            let answer = try attacker.request(#"{"op":"report","permit":"\#(String(guess, radix: 16))","outcome":"cancelled"}"#)
            #expect(answer["error"]?["code"] == .string("unknown_permit"), "guessed \(String(guess, radix: 16))")
        }
        _ = try victim.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
    }

    @Test func item17_sharedSocketDirectoriesAreRefusedOrWarnedAndOthersSocketsAreNeverUnlinked() throws {
        let open = try TemporaryFolder()
        #expect(chmod(open.url.path, 0o777) == 0)
        let config = SidecarProcess.config().replacingOccurrences(of: "./fusebox.sock", with: "\(open.url.path)/fusebox.sock")
        let refused = try SidecarProcess(config: config, waitForSocket: false)
        #expect(try refused.waitForExit() != 0)
        #expect(refused.standardErrorShows("without the sticky bit"))

        let sticky = try TemporaryFolder()
        #expect(chmod(sticky.url.path, 0o1777) == 0)
        let warned = try SidecarProcess(config: SidecarProcess.config().replacingOccurrences(of: "./fusebox.sock", with: "\(sticky.url.path)/fusebox.sock"))
        #expect(!warned.logEvents("socket_directory_shared").isEmpty)

        // Someone replaces the live socket; at stop the sidecar leaves theirs alone.
        let sidecar = try SidecarProcess()
        #expect(unlink(sidecar.socket) == 0)
        let impostor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(impostor) }
        #expect(UnixAddress.bind(impostor, to: sidecar.socket) == 0)
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        #expect(FileManager.default.fileExists(atPath: sidecar.socket), "the impostor's socket was unlinked")
        #expect(!FileManager.default.fileExists(atPath: sidecar.adminSocket), "its own admin socket is removed")
    }

    @Test func item18_refusedFloodsHeadHealthzNullBreakerAndTheStoreBackoff() throws {
        let other = getuid() == 4_242 ? 4_343 : 4_242
        let refusing = try SidecarProcess(config: SidecarProcess.config("allowed_uids: [\(other)]"))
        for _ in 0..<500 { _ = try? refusing.connect().readLine() }
        // A barrier in the log: a reload's line comes after the refusals' (one writer, in order).
        refusing.signal(SIGHUP)
        try waitUntil("the reload is logged after the refusals") { !refusing.logEvents("config_reloaded").isEmpty }
        #expect(refusing.logEvents("connection_refused").count <= 2, "refused connections are logged at most once per 10 s")

        let (sidecar, base) = try SidecarProcess.withHTTP()
        let head = try run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", base + "/healthz"])
        #expect(head.out == "200")
        let all = try sidecar.connect().ok(#"{"op":"status","breaker":null}"#)
        #expect(all["breakers"]?[3] != nil)
    }

    @Test(.enabled(if: getuid() == 0, "mounts a small tmpfs to fill"))
    func item18_aFullDiskIsRetriedWithTheDocumentedBackoff() throws {
        let folder = try TemporaryFolder()
        let disk = folder.url.appendingPathComponent("disk").path
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        #expect(try run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk]).status == 0)
        defer { _ = try? run(["umount", "-l", disk]) }
        // No transition cap here: a flapping client then queues thousands of transitions, whose
        // wake-ups once cut the backoff short.
        let config = SidecarProcess.config().replacingOccurrences(of: "http: off", with: "http: 127.0.0.1:0")
            .replacingOccurrences(of: "store: off", with: "store: \(disk)/fusebox.db")
            .replacingOccurrences(of: "  permit_ttl: 10s", with: "  permit_ttl: 10s\n  max_transitions_per_minute: off")
        let sidecar = try SidecarProcess(config: config)
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        let base = "http://" + (sidecar.logEvents("http_listening").first?["address"]?.stringValue ?? "")
        _ = try? run(["dd", "if=/dev/zero", "of=\(disk)/filler", "bs=64k", "count=64"])
        let client = try sidecar.connect()
        func errors() throws -> Int {
            let body = try curl(base + "/metrics").body
            let line = body.split(separator: "\n").first { $0.hasPrefix("fusebox_store_errors_total ") }
            return Int(Double(line?.split(separator: " ").last ?? "0") ?? 0)
        }
        // Transitions and traffic keep the writer busy for 5 s while the disk is full.
        try waitUntil("the store starts failing", timeout: 10) {
            for _ in 0..<4 { _ = try client.ok(#"{"op":"record","breaker":"openai","status":503,"error":"\#(String(repeating: "e", count: 900))"}"#) }
            _ = try sidecar.connect(admin: true).ok(#"{"op":"reset","breaker":"openai"}"#)
            return try errors() > 0
        }
        let first = try errors()
        let flapStart = Date()
        while Date().timeIntervalSince(flapStart) < 5 {
            _ = try client.ok(#"{"op":"record","breaker":"anthropic","status":503,"retry_after_ms":0}"#)
            if let permit = try client.ok(#"{"op":"acquire","breaker":"anthropic"}"#)["permit"]?.stringValue {
                _ = try client.ok(#"{"op":"report","permit":"\#(permit)","outcome":"success"}"#)
            }
        }
        // Doubling from 0.5 s: at most about log2(5 / 0.5) + 2 attempts in 5 s, never hundreds.
        let attempts = try errors() - first
        #expect(attempts <= 6, "\(attempts) failed attempts")
    }
}
