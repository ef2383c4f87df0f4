import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes lines to a file descriptor on its own queue, so whoever logs (the
/// thread delivering a decision's events, which the decision's caller waits
/// on) never waits for a slow terminal, pipe or disk.
/// At most `capacity` lines wait; beyond that new lines are dropped and
/// counted rather than held in unbounded memory.
public final class LineSink: Sendable {
    private let descriptor: Int32
    private let ownsDescriptor: Bool
    /// The file appended to, for `reopen`; nil for standard output and error.
    private let path: String?
    private let queue = DispatchQueue(label: "fusebox.log-writer")
    private let pending = Atomic<Int>(0)
    private let droppedLines = Atomic<Int>(0)
    public let capacity: Int

    public static let standardOutput = LineSink(descriptor: 1, owns: false)
    public static let standardError = LineSink(descriptor: 2, owns: false)

    public convenience init(descriptor: Int32, owns: Bool, capacity: Int = 100_000) {
        self.init(descriptor: descriptor, owns: owns, path: nil, capacity: capacity)
    }

    private init(descriptor: Int32, owns: Bool, path: String?, capacity: Int) {
        self.descriptor = descriptor
        self.ownsDescriptor = owns
        self.path = path
        self.capacity = capacity
    }

    /// Opens `path` for appending (created with mode 0640 if missing).
    public convenience init(appendingTo path: String) throws(SinkError) {
        self.init(descriptor: try Self.openForAppending(path), owns: true, path: path, capacity: 100_000)
    }

    private static func openForAppending(_ path: String) throws(SinkError) -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SinkError(path: path, reason: String(cString: strerror(errno))) }
        return fd
    }

    /// After logrotate moved the file away: lines queued so far go to the old
    /// file, later ones to a new file at the same path. The descriptor number
    /// stays the same (dup2), so no writer ever sees it change. Does nothing
    /// for standard output and error; on failure the old file stays in use.
    public func reopen() throws(SinkError) {
        guard let path else { return }
        let fresh = try Self.openForAppending(path)
        queue.sync {
            _ = dup2(fresh, descriptor)
            close(fresh)
        }
    }

    public struct SinkError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot open log file \(path): \(reason)" }
    }

    /// Lines dropped because `capacity` lines were already waiting.
    public var dropped: Int { droppedLines.load(ordering: .relaxed) }

    /// Queues one line (it must end with a newline). Never blocks.
    public func write(_ line: [UInt8]) {
        guard pending.add(1, ordering: .relaxed).newValue <= capacity else {
            pending.subtract(1, ordering: .relaxed)
            droppedLines.add(1, ordering: .relaxed)
            return
        }
        queue.async { [self] in
            writeAll(line)
            pending.subtract(1, ordering: .relaxed)
        }
    }

    /// Waits until every queued line is written: at shutdown.
    public func flush() { queue.sync {} }

    private func writeAll(_ line: [UInt8]) {
        line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR || errno == EAGAIN {
                    continue
                } else {
                    return  // the reader is gone (EPIPE, closed): nothing more to do with this line
                }
            }
        }
    }

    deinit {
        if ownsDescriptor { close(descriptor) }
    }
}
