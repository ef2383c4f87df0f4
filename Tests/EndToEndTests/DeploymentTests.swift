import Foundation
import FuseboxJSON
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an operator deploys with: settings from flags and the environment,
/// systemd's readiness protocol, log files that logrotate can move, and a
/// configuration that reloads when its file changes.
@Suite struct DeploymentTests {
    static let fileConfig = """
    socket: ./file.sock
    admin_socket: ./file-admin.sock
    http: off
    store: off
    """

    @Test func checkSaysWhereEachSettingCameFrom() throws {
        let folder = try TemporaryFolder()
        let file = try folder.write("fusebox.yaml", Self.fileConfig)
        let result = try FuseboxBinary.run(
            ["check", "--socket", "/tmp/flag.sock"],
            environment: ["FUSEBOX_CONFIG": file.path, "FUSEBOX_SOCKET": "/tmp/env.sock", "FUSEBOX_STORE": "/tmp/env.db"]
        )
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("#   config: \(file.path) (environment FUSEBOX_CONFIG)"))
        #expect(lines.contains("#   socket: /tmp/flag.sock (flag --socket)"))  // flag beats environment
        #expect(lines.contains("#   store: /tmp/env.db (environment FUSEBOX_STORE)"))  // environment beats file
        #expect(lines.contains("#   admin_socket: ./file-admin.sock (file \(file.path))"))  // file beats default
        #expect(lines.contains(#"socket: "/tmp/flag.sock""#))

        let defaults = try FuseboxBinary.run(["check"], environment: ["FUSEBOX_CONFIG": ""])
        #expect(defaults.stdout.contains("#   http: 127.0.0.1:9464 (default)"))
    }

    @Test func badValuesFromTheEnvironmentAreRefusedWithTheirSource() throws {
        let result = try FuseboxBinary.run(["check"], environment: ["FUSEBOX_HTTP": "everywhere"])
        #expect(result.status == 65)
        #expect(result.stderr.contains("environment FUSEBOX_HTTP: http: expected host:port"), "\(result.stderr)")
    }

    @Test func serveBindsWhereFlagAndEnvironmentSay() throws {
        let sidecar = try SidecarProcess(
            config: Self.fileConfig, arguments: ["--socket", "./flag.sock"],
            environment: ["FUSEBOX_SOCKET": "./env.sock", "FUSEBOX_ADMIN_SOCKET": "./env-admin.sock", "FUSEBOX_HTTP": "127.0.0.1:0"],
            waitForSocket: true
        )
        let path = { (name: String) in sidecar.folder.url.appendingPathComponent(name).path }
        #expect(FileManager.default.fileExists(atPath: path("flag.sock")))
        #expect(FileManager.default.fileExists(atPath: path("env-admin.sock")))
        #expect(!FileManager.default.fileExists(atPath: path("env.sock")))
        #expect(!FileManager.default.fileExists(atPath: path("file.sock")))
        try waitUntil("HTTP listens on the address from FUSEBOX_HTTP") { !sidecar.logEvents("http_listening").isEmpty }
        // ctl follows the same variables.
        let status = try FuseboxBinary.run(["ctl", "status", "--json"], environment: ["FUSEBOX_SOCKET": path("flag.sock")])
        #expect(status.status == 0 && status.stdout.contains(#""name":"openai""#), "\(status.stderr)")
        let reset = try FuseboxBinary.run(["ctl", "reset", "openai", "--json"], environment: ["FUSEBOX_ADMIN_SOCKET": path("env-admin.sock")])
        #expect(reset.status == 0 && reset.stdout.contains(#""state":"closed""#), "\(reset.stderr)")
    }

    @Test func systemdHearsReadyOnceBoundAndStoppingOnSIGTERM() throws {
        let folder = try TemporaryFolder()
        let notify = folder.url.appendingPathComponent("notify.sock").path
        let listener = try DatagramListener(path: notify)
        let sidecar = try SidecarProcess(environment: ["NOTIFY_SOCKET": notify], waitForSocket: false)
        let ready = try listener.receive(timeout: 20)
        #expect(ready.contains("READY=1"), "\(ready)")
        // READY means decisions are served: the socket answers at once.
        let client = try sidecar.connect()
        _ = try client.permit("openai")
        sidecar.signal(SIGTERM)
        let stopping = try listener.receive(timeout: 10)
        #expect(stopping.contains("STOPPING=1"), "\(stopping)")
        #expect(try sidecar.waitForExit() == 0)
    }

    @Test func aMovedLogFileIsReopenedOnSIGHUP() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("log: ./fusebox.log"), waitForSocket: false)
        let log = sidecar.folder.url.appendingPathComponent("fusebox.log")
        let rotated = sidecar.folder.url.appendingPathComponent("fusebox.log.1")
        try waitUntil("the log file has the start") { (try? String(contentsOf: log, encoding: .utf8))?.contains(#""event":"started""#) == true }
        try FileManager.default.moveItem(at: log, to: rotated)
        sidecar.signal(SIGHUP)
        try waitUntil("the reload is logged in a new file") {
            (try? String(contentsOf: log, encoding: .utf8))?.contains(#""event":"config_reloaded""#) == true
        }
        let old = try String(contentsOf: rotated, encoding: .utf8)
        #expect(!old.contains("config_reloaded"))
    }

    @Test func aChangedConfigurationFileIsReloadedWhenWatched() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("watch_config: 100ms"))
        let client = try sidecar.connect()
        #expect(try client.request(#"{"op":"status","breaker":"gemini"}"#)["ok"] == .bool(false))
        // Written beside and renamed over, as a ConfigMap update (and most editors) do.
        let next = SidecarProcess.config("watch_config: 100ms").replacingOccurrences(of: "  ollama: {}", with: "  ollama: {}\n  gemini: {}")
        _ = try sidecar.folder.write("fusebox.yaml", next)
        try waitUntil("the new breaker is served") { try client.request(#"{"op":"status","breaker":"gemini"}"#)["ok"] == .bool(true) }
        // The log line follows the reload through the log writer's queue and the test's pipe reader: waited for.
        try waitUntil("the reload is logged") { sidecar.logEvents("config_reloaded").count == 1 }
        #expect(sidecar.logEvents("config_reloaded").count == 1, "one reload for one change")
    }

    @Test func ctlCallRunsOneCycleOnOneConnection() throws {
        let sidecar = try SidecarProcess()
        let call = try FuseboxBinary.run(["ctl", "call", "openai", "--status", "503", "--socket", sidecar.socket])
        #expect(call.status == 0, "\(call.stderr)")
        let answers = call.stdout.split(separator: "\n").filter { $0.hasPrefix("← ") }
        #expect(answers.count == 2 && answers[1].contains(#"{"ok":true,"state":"closed"}"#), "\(call.stdout)")
        let json = try FuseboxBinary.run(["ctl", "call", "llm", "--chain", "--json", "--socket", sidecar.socket])
        let lines = json.stdout.split(separator: "\n").map { try? JSONParser.parse(String($0)) }
        #expect(lines.count == 2 && lines.allSatisfy { $0?["ok"] == .bool(true) }, "\(json.stdout)")
    }

    @Test func everyKindOfFailureHasItsOwnExitStatus() throws {
        let sidecar = try SidecarProcess()
        let socket = ["--socket", sidecar.socket]
        #expect(try FuseboxBinary.run(["ctl", "status", "nosuch"] + socket).status == 3)
        #expect(try FuseboxBinary.run(["ctl", "status", "--socket", sidecar.folder.url.appendingPathComponent("gone.sock").path]).status == 69)
        #expect(try FuseboxBinary.run(["ctl", "call", "openai", "--outcome", "maybe"] + socket).status == 64)
        #expect(try FuseboxBinary.run(["check", "--config", sidecar.folder.url.appendingPathComponent("none.yaml").path]).status == 65)
        #expect(try FuseboxBinary.run(["store", "stats", "--db", sidecar.folder.url.appendingPathComponent("none.db").path]).status == 66)
        _ = try FuseboxBinary.run(["ctl", "force", "openai", "open", "--admin-socket", sidecar.adminSocket])
        #expect(try FuseboxBinary.run(["ctl", "call", "openai"] + socket).status == 2)
        // A second sidecar on the same socket cannot start.
        let second = try SidecarProcess(sharing: sidecar)
        #expect(try second.waitForExit() == 71)
    }

    @Test func analyzeAsJSONOnAnEmptyStoreIsStillJSON() throws {
        let folder = try TemporaryFolder()
        let db = folder.url.appendingPathComponent("empty.db").path
        let sidecar = try SidecarProcess(config: SidecarProcess.config().replacingOccurrences(of: "store: off", with: "store: \(db)"))
        sidecar.signal(SIGTERM)
        _ = try sidecar.waitForExit()
        let result = try FuseboxBinary.run(["analyze", "--db", db, "--format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let document = try JSONParser.parse(result.stdout)
        #expect(document["incidents"] == .array([]))
    }
}

/// A bound datagram socket standing in for systemd's notify socket.
final class DatagramListener {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw Timeout(description: "cannot bind \(path): errno \(errno)") }
    }

    /// The next datagram's text.
    func receive(timeout: TimeInterval) throws -> String {
        var wait = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&wait, 1, Int32(timeout * 1000)) == 1 else { throw Timeout(description: "no datagram within \(timeout) s") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { throw Timeout(description: "recv failed: errno \(errno)") }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    deinit { close(fd) }
}
