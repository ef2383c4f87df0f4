import Foundation
import FuseboxWire
import Testing
import FuseboxSocket

@Suite("fusebox serve: sockets and lifecycle")
struct ServeLifecycleTests {
    @Test func socketsAreCreatedOwnerOnlyAndRemovedOnSIGTERM() throws {
        let sidecar = try SidecarProcess()
        for path in [sidecar.socket, sidecar.adminSocket] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
        sidecar.signal(SIGTERM)
        #expect(try sidecar.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: sidecar.socket))
        #expect(!FileManager.default.fileExists(atPath: sidecar.adminSocket))
        #expect(sidecar.logEvents("stopped").count == 1)
    }

    @Test func socketModeIsConfigurable() throws {
        let sidecar = try SidecarProcess(config: SidecarProcess.config("socket_mode: \"0660\""))
        let attributes = try FileManager.default.attributesOfItem(atPath: sidecar.socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)
    }

    @Test func aSecondSidecarOnTheSameSocketRefusesToStart() throws {
        let first = try SidecarProcess()
        let second = try SidecarProcess(sharing: first)
        #expect(try second.waitForExit() == 71)
        #expect(second.standardErrorShows("already serving on"), "\(second.standardError)")
        _ = try first.connect().ok(#"{"op":"ping"}"#)
    }

    @Test func aStaleSocketFileIsCleanedUp() throws {
        let folder = try TemporaryFolder()
        // A socket file nobody listens on: what a killed process leaves behind.
        let stale = folder.url.appendingPathComponent("fusebox.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(UnixAddress.bind(fd, to: stale) == 0)
        close(fd)
        #expect(FileManager.default.fileExists(atPath: stale))
        _ = try folder.write("fusebox.yaml", SidecarProcess.config())
        let sidecar = try SidecarProcess(reusing: folder)
        _ = try sidecar.connect().ok(#"{"op":"ping"}"#)
    }

    @Test func aFileThatIsNotASocketIsNeverRemoved() throws {
        let folder = try TemporaryFolder()
        _ = try folder.write("fusebox.sock", "precious data")
        _ = try folder.write("fusebox.yaml", SidecarProcess.config())
        let sidecar = try SidecarProcess(reusing: folder, waitForSocket: false)
        #expect(try sidecar.waitForExit() == 71)
        #expect(sidecar.standardErrorShows("is not a socket"), "\(sidecar.standardError)")
        #expect(try String(contentsOf: folder.url.appendingPathComponent("fusebox.sock"), encoding: .utf8) == "precious data")
    }

    @Test func sighupWithABrokenFileKeepsTheRunningConfig() throws {
        let sidecar = try SidecarProcess()
        try "breakers: { openai: { trip: { failure_rate: 7 } } }\n".write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the failed reload is logged") { !sidecar.logEvents("config_reload_failed").isEmpty }
        let failed = try #require(sidecar.logEvents("config_reload_failed").first)
        guard case .string(let error)? = failed["error"] else { Issue.record("no error"); return }
        #expect(error.contains("failure_rate"))
        let client = try sidecar.connect()
        #expect(try client.ok(#"{"op":"hello"}"#)["breakers"] == .array(["openai", "anthropic", "ollama", "shortlease"].map { .string($0) }))
    }

    @Test func sighupWithAGoodFileKeepsStateAddsAndRemovesBreakers() throws {
        let sidecar = try SidecarProcess()
        let client = try sidecar.connect()
        let admin = try sidecar.connect(admin: true)
        _ = try admin.ok(#"{"op":"force","breaker":"openai","state":"open"}"#)
        let updated = SidecarProcess.config().replacingOccurrences(of: "  ollama: {}\n", with: "  mistral: {}\n")
            .replacingOccurrences(of: "llm: [openai, anthropic, ollama]", with: "llm: [openai, mistral]")
        try updated.write(to: sidecar.configFile, atomically: true, encoding: .utf8)
        sidecar.signal(SIGHUP)
        try waitUntil("the reload is logged") { !sidecar.logEvents("config_reloaded").isEmpty }
        let hello = try client.ok(#"{"op":"hello"}"#)
        #expect(hello["breakers"] == .array(["openai", "anthropic", "mistral", "shortlease"].map { .string($0) }))
        #expect(try client.state("openai") == "forced_open")
        #expect(try client.ok(#"{"op":"route","chain":"llm"}"#)["breaker"] == .string("mistral"))
        let reloaded = try #require(sidecar.logEvents("config_reloaded").first)
        #expect(reloaded["added"] == .array([.string("mistral")]))
        #expect(reloaded["removed"] == .array([.string("ollama")]))
    }
}

extension SidecarProcess {
    /// A sidecar in a folder the test prepared (with its fusebox.yaml).
    convenience init(reusing folder: TemporaryFolder, waitForSocket: Bool = true) throws {
        try self.init(preparedFolder: folder, waitForSocket: waitForSocket)
    }
}
