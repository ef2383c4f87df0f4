import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes lines to a file descriptor on its own queue, so whoever logs (the
/// engine, under its lock) never waits for a slow terminal, pipe or disk.
/// At most `capacity` lines wait; beyond that new lines are dropped and
/// counted rather than held in unbounded memory.
public final class LineSink: Sendable {
    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private let queue = DispatchQueue(label: "fusebox.log-writer")
    private let pending = Atomic<Int>(0)
    private let droppedLines = Atomic<Int>(0)
    public let capacity: Int

    public static let standardOutput = LineSink(descriptor: 1, owns: false)
    public static let standardError = LineSink(descriptor: 2, owns: false)

    public init(descriptor: Int32, owns: Bool, capacity: Int = 100_000) {
        self.descriptor = descriptor
        self.ownsDescriptor = owns
        self.capacity = capacity
    }

    /// Opens `path` for appending (created with mode 0640 if missing).
    public convenience init(appendingTo path: String) throws(SinkError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SinkError(path: path, reason: String(cString: strerror(errno))) }
        self.init(descriptor: fd, owns: true)
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
