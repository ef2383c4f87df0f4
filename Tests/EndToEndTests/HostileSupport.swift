import Foundation
import FuseboxJSON
import Synchronization
import FuseboxWire

/// What the hostile-client tests read about a live sidecar from outside.
/// Each probe throws where `/proc` cannot answer, so no check passes by
/// reading nothing.
enum ProcessProbe {
    struct Unreadable: Error, CustomStringConvertible { var description: String }

    static func openDescriptors(_ pid: Int32) throws -> Int {
        do { return try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count } catch {
            throw Unreadable(description: "cannot list /proc/\(pid)/fd: \(error)")
        }
    }

    static func residentKiB(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { throw Unreadable(description: "no VmRSS in /proc/\(pid)/status") }
        return kib
    }

    /// User + system CPU of the process, in clock ticks (1/100 s here).
    static func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name, which sits in parentheses and may hold spaces.
        guard let close = stat.lastIndex(of: ")") else { throw Unreadable(description: "odd /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw Unreadable(description: "odd /proc/\(pid)/stat")
        }
        return user + system
    }
}

extension SidecarProcess {
    /// A sidecar with HTTP on a free loopback port, and that port's base URL.
    static func withHTTP(_ extra: String = "", store: Bool = false) throws -> (SidecarProcess, String) {
        var config = SidecarProcess.config(extra).replacingOccurrences(of: "http: off", with: "http: 127.0.0.1:0")
        if store { config = config.replacingOccurrences(of: "store: off", with: "store: ./fusebox.db") }
        let sidecar = try SidecarProcess(config: config)
        try waitUntil("HTTP listens") { !sidecar.logEvents("http_listening").isEmpty }
        guard case .string(let address)? = sidecar.logEvents("http_listening").first?["address"] else {
            throw Timeout(description: "no http address logged")
        }
        return (sidecar, "http://\(address)")
    }

    var pid: Int32 { process.processIdentifier }
}

/// Runs a command to completion; its status and output.
@discardableResult
func run(_ arguments: [String], input: String? = nil, timeout: TimeInterval = 60) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), stdin = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    // Both pipes drained at once, so neither fills while the other is read.
    let collected = Mutex([Data(), Data()])
    let group = DispatchGroup()
    for (pipe, index) in [(out, 0), (err, 1)] {
        group.enter()
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.withLock { $0[index] = data }
            group.leave()
        }
    }
    try waitUntil("\(arguments.first ?? "") finishes", timeout: timeout) { !process.isRunning }
    group.wait()
    let (stdout, stderr) = collected.withLock { (String(decoding: $0[0], as: UTF8.self), String(decoding: $0[1], as: UTF8.self)) }
    return (process.terminationStatus, stdout, stderr)
}

/// `curl` for one URL: status and body.
func curl(_ url: String, _ extra: [String] = []) throws -> (status: Int, body: String) {
    let result = try run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"] + extra + [url])
    var lines = result.out.components(separatedBy: "\n")
    let status = Int(lines.popLast() ?? "") ?? 0
    return (status, lines.joined(separator: "\n"))
}

/// A raw TCP connection to a loopback `host:port` URL, for half-sent requests.
final class RawTCP {
    let fd: Int32

    init(_ base: String) throws {
        let address = base.replacingOccurrences(of: "http://", with: "")
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw Timeout(description: "bad address \(base)")
        }
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw Timeout(description: "connect failed: \(errno)") }
    }

    func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    /// Whether the server closed the connection (a read sees end of file or a reset), waiting up to `timeout`.
    func closedByServer(within timeout: TimeInterval) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard poll(&pfd, 1, 50) > 0 else { continue }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { return true }
        }
        return false
    }

    deinit { close(fd) }
}

/// The arguments that run a command as `nobody` when we are root (the test
/// is then an attack by an unprivileged user); as ourselves otherwise.
/// Its python3 is the system's, which `nobody` can run (a pyenv under /root it cannot).
func asUnprivileged(_ command: [String]) -> [String] {
    var command = command
    if command.first == "python3", FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") { command[0] = "/usr/bin/python3" }
    return getuid() == 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + command : command
}

extension JSONValue {
    var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    var doubleValue: Double? { if case .number(let n) = self { return Double(n) } else { return nil } }
    subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }
}

/// RFC 3339 times from the protocol, as Unix milliseconds.
enum RFC3339Parse {
    static func milliseconds(_ value: JSONValue?) throws -> Double {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let text = value?.stringValue, let date = formatter.date(from: text) else {
            throw Timeout(description: "not an RFC 3339 time: \(String(describing: value))")
        }
        return date.timeIntervalSince1970 * 1_000
    }
}

/// Everything a pipe has delivered so far, read as it arrives, so a test can wait for a line
/// instead of sleeping and reading at the end.
final class PipeText: Sendable {
    let pipe = Pipe()
    private let text = Mutex("")

    init() {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if !data.isEmpty { self?.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
    }

    var value: String { text.withLock { $0 } }
}
