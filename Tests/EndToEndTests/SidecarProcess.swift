import Foundation
import FuseboxWire
import Synchronization
import FuseboxJSON
import FuseboxSocket

/// A real `fusebox serve` in a temporary folder, with its log lines captured.
/// Stopped with SIGTERM (and waited for) when the test drops it.
final class SidecarProcess: @unchecked Sendable {
    let folder: TemporaryFolder
    let process = Process()
    private let output = Mutex<[String]>([])
    private let partial = Mutex<String>("")
    private let errors = Mutex<String>("")

    var socket: String { folder.url.appendingPathComponent("fusebox.sock").path }
    var adminSocket: String { folder.url.appendingPathComponent("fusebox-admin.sock").path }
    var configFile: URL { folder.url.appendingPathComponent("fusebox.yaml") }

    /// A configuration with short timings, sockets in the folder, nothing else on.
    static func config(_ extra: String = "") -> String {
        """
        socket: ./fusebox.sock
        admin_socket: ./fusebox-admin.sock
        http: off
        store: off
        instance: e2e
        defaults:
          trip: { consecutive_failures: 3, window: off }
          open: { duration: 400ms, jitter: 0, backoff: { multiplier: 2, max: 2s } }
          half_open: { max_wait: 5s }
          permit_ttl: 10s
        breakers:
          openai: {}
          anthropic: {}
          ollama: {}
          shortlease: { permit_ttl: 300ms, open: { duration: 200ms } }
        chains:
          llm: [openai, anthropic, ollama]
        \(extra)
        """
    }

    /// `configFlag: false` starts it without `--config` (for FUSEBOX_CONFIG and the embedded default);
    /// `environment` is added to the test's own.
    init(
        config: String = SidecarProcess.config(), arguments: [String] = [], environment: [String: String] = [:],
        configFlag: Bool = true, waitForSocket: Bool = true
    ) throws {
        folder = try TemporaryFolder()
        _ = try folder.write("fusebox.yaml", config)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        try start(arguments: (configFlag ? ["--config", configFile.path] : []) + arguments, waitForSocket: waitForSocket)
    }

    init(preparedFolder: TemporaryFolder, waitForSocket: Bool) throws {
        folder = preparedFolder
        try start(arguments: ["--config", configFile.path], waitForSocket: waitForSocket)
    }

    /// Another sidecar in the same folder (to test what two do on one socket).
    init(sharing other: SidecarProcess, arguments: [String] = []) throws {
        folder = other.folder
        try start(arguments: ["--config", configFile.path] + arguments, waitForSocket: false)
    }

    private func start(arguments: [String], waitForSocket: Bool) throws {
        process.executableURL = FuseboxBinary.url
        process.arguments = ["serve"] + arguments
        process.currentDirectoryURL = folder.url
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.partial.withLock { partial in
                partial += String(decoding: data, as: UTF8.self)
                while let newline = partial.firstIndex(of: "\n") {
                    let line = String(partial[..<newline])
                    partial = String(partial[partial.index(after: newline)...])
                    self.output.withLock { $0.append(line) }
                }
            }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        if waitForSocket {
            try waitUntil("the sidecar logs that it started") { self.logLines.contains { $0.contains(#""event":"started""#) } }
        }
    }

    var logLines: [String] { output.withLock { $0 } }
    var standardError: String { errors.withLock { $0 } }

    /// Parsed log lines with the given `event`.
    func logEvents(_ event: String) -> [JSONValue] {
        logLines.compactMap { try? JSONParser.parse($0) }.filter { $0["event"] == .string(event) }
    }

    func connect(admin: Bool = false) throws -> LineClient {
        try LineClient(path: admin ? adminSocket : socket)
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to end; its exit status.
    func waitForExit(timeout: TimeInterval = 10) throws -> Int32 {
        try waitUntil("the sidecar exits", timeout: timeout) { !self.process.isRunning }
        return process.terminationStatus
    }

    /// Whether standard error comes to contain `text`. The pipe's reader runs
    /// on its own thread and may lag the exit, and the pipe's end of file is
    /// no signal: a sidecar another test spawns meanwhile can inherit it.
    func standardErrorShows(_ text: String, timeout: TimeInterval = 10) -> Bool {
        (try? waitUntil("standard error shows \(text)", timeout: timeout) { self.standardError.contains(text) }) != nil
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

struct Timeout: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func waitUntil(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        Thread.sleep(forTimeInterval: 0.02)  // poll
    }
    throw Timeout(description: "timed out after \(timeout)s waiting until \(what)")
}

extension LineClient {
    /// Sends `json` and returns the answer, which must be ok.
    func ok(_ json: String) throws -> JSONValue {
        let answer = try request(json)
        guard answer["ok"] == .bool(true) else { throw Timeout(description: "not ok: \(json) → \(answer)") }
        return answer
    }

    func permit(_ breaker: String) throws -> String {
        let answer = try ok(#"{"op":"acquire","breaker":"\#(breaker)"}"#)
        guard case .string(let permit)? = answer["permit"] else { throw Timeout(description: "refused: \(answer)") }
        return permit
    }

    func state(_ breaker: String) throws -> String? {
        let answer = try ok(#"{"op":"status","breaker":"\#(breaker)"}"#)
        guard case .array(let list)? = answer["breakers"], case .string(let state)? = list.first?["state"] else { return nil }
        return state
    }

    func field(_ breaker: String, _ key: String) throws -> JSONValue? {
        let answer = try ok(#"{"op":"status","breaker":"\#(breaker)"}"#)
        guard case .array(let list)? = answer["breakers"] else { return nil }
        return list.first?[key]
    }
}
