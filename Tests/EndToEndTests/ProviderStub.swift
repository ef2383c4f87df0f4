import Foundation
import FuseboxJSON

/// scripts/provider-stub.py: a real HTTP server on loopback standing in for a
/// provider, its answers changed while the test runs. It stops when dropped
/// (its standard input closes).
final class ProviderStub: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    let port: Int

    var base: String { "http://127.0.0.1:\(port)" }

    init(status: Int = 200, delayMs: Int = 0) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/provider-stub.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        var line = Data()
        while true {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw Timeout(description: "the provider stub did not start") }
        self.port = port
        try control(status: status, delayMs: delayMs)
    }

    /// Changes how the stub answers from now on.
    func control(status: Int? = nil, delayMs: Int? = nil, hang: Bool? = nil) throws {
        var fields: [String] = []
        if let status { fields.append(#""status":\#(status)"#) }
        if let delayMs { fields.append(#""delay_ms":\#(delayMs)"#) }
        if let hang { fields.append(#""hang":\#(hang)"#) }
        let answer = try curl(base + "/_control", ["-X", "POST", "-d", "{\(fields.joined(separator: ","))}"])
        guard answer.status == 200 else { throw Timeout(description: "stub control failed: \(answer)") }
    }

    /// Requests it has answered (or is answering), not counting control ones.
    func requests() throws -> Int {
        guard case .number(let text)? = try stats()["requests"], let count = Int(text) else { return -1 }
        return count
    }

    func stats() throws -> JSONValue { try JSONParser.parse(try curl(base + "/_stats").body) }

    /// One real GET as an app would make it: its status and how long it took.
    func call() throws -> (status: Int, milliseconds: Double) {
        let started = Date()
        let connection = try RawTCP(base)
        connection.send("GET /v1/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(connection.fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (status, Date().timeIntervalSince(started) * 1_000)
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
