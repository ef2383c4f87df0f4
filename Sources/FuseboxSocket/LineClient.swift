#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FuseboxJSON

/// A small blocking client for protocol v1 over a Unix socket: what `fusebox
/// ctl` and the end-to-end tests speak through. One request at a time, or
/// raw lines for pipelining.
/// Use from one thread at a time (it may be handed from one thread to another).
public final class LineClient: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var readOffset = 0
    private var chunk = [UInt8](repeating: 0, count: 65_536)

    /// Connects to `path`; reads give up after `timeout`.
    public init(path: String, timeout: Duration = .seconds(5)) throws(Failure) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "cannot create a socket: \(Self.errnoText())") }
        guard path.utf8.count <= UnixAddress.maxPathBytes else {
            close(fd)
            throw Failure(description: "socket path \(path) is too long")
        }
        guard UnixAddress.connect(fd, to: path) == 0 else {
            let reason = Self.errnoText()
            close(fd)
            throw Failure(description: "cannot connect to \(path): \(reason) (is `fusebox serve` running?)")
        }
        setTimeout(timeout)
    }

    deinit { close(fd) }

    /// `nil` waits for ever (for `watch`).
    public func setTimeout(_ timeout: Duration?) {
        let ns = timeout?.components.seconds ?? 0
        var value = timeval(tv_sec: Int(ns), tv_usec: Int((timeout?.components.attoseconds ?? 0) / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes raw bytes (lines must end in a newline).
    public func write(_ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write failed: \(Self.errnoText())")
            }
            offset += written
        }
    }

    public func write(_ line: String) throws(Failure) {
        try write(Array((line.hasSuffix("\n") ? line : line + "\n").utf8))
    }

    /// The next line without its newline; `nil` when the server closed.
    public func readLine() throws(Failure) -> String? {
        while true {
            if let newline = buffer[readOffset...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[readOffset..<newline], as: UTF8.self)
                readOffset = newline + 1
                if readOffset > 65_536 {
                    buffer.removeFirst(readOffset)
                    readOffset = 0
                }
                return line
            }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return nil }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "timed out waiting for the server") }
                if errno == ECONNRESET { return nil }
                throw Failure(description: "read failed: \(Self.errnoText())")
            }
            buffer.append(contentsOf: chunk[0..<count])
        }
    }

    /// Sends one request and reads its answer.
    public func request(_ line: String) throws(Failure) -> JSONValue {
        do {
            try write(line)
        } catch {
            // A server that refuses a connection (overloaded, forbidden) says why and closes
            // before we write: that line, when it came, explains better than a broken pipe.
            guard let said = try? readLine(), let refusal = try? JSONParser.parse(said) else { throw error }
            return refusal
        }
        guard let answer = try readLine() else { throw Failure(description: "the server closed the connection") }
        do {
            return try JSONParser.parse(answer)
        } catch {
            throw Failure(description: "the server answered something that is not JSON: \(answer.prefix(200))")
        }
    }

    /// Stops sending; the server answers what it has and closes.
    public func finishWriting() { shutdown(fd, Int32(SHUT_WR)) }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
