#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import FuseboxWire

/// The Unix socket's file: checked before binding, given its mode after, and
/// removed at a clean stop.
public enum SocketFile {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    static let maxPathBytes = UnixAddress.maxPathBytes

    /// Makes `path` free to bind: a stale socket left by a dead process is
    /// removed; a socket some live process answers on, or a file that is not a
    /// socket, is refused.
    public static func prepare(_ path: String) throws(Problem) {
        guard path.utf8.count <= maxPathBytes else {
            throw Problem(description: "socket path \(path) is \(path.utf8.count) bytes; Unix sockets allow at most \(maxPathBytes)")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw Problem(description: "\(path) exists and is not a socket; remove it or choose another path")
        }
        if answers(path) {
            throw Problem(description: "another process is already serving on \(path) (is another fusebox running?); stop it or choose another socket path")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Problem(description: "cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Whether something accepts connections on the socket at `path`.
    static func answers(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return UnixAddress.connect(fd, to: path) == 0
    }

    public static func setMode(_ path: String, _ mode: UInt32) throws(Problem) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw Problem(description: "cannot set mode \(String(mode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
        }
    }

    public static func remove(_ path: String) {
        var info = stat()
        if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
    }

    /// Raises the soft open-files limit to the hard one, so `max_connections`
    /// is what limits connections rather than a default of 1024 descriptors.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }
}
