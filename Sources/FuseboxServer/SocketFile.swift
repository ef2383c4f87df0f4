#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import FuseboxWire
import FuseboxSocket

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

    /// A listening Unix socket at `path`, created with `mode` rather than the
    /// umask's, so there is no moment in which it is open to others. It is
    /// bound under a staging name and hard-linked to `path` once it listens:
    /// whoever sees the file can connect (a script waiting for `-S` is never
    /// refused), and the link fails if `path` was taken meanwhile, as a bind
    /// there would. A path too long for a staging name is bound directly.
    static func listen(_ path: String, mode: UInt32, backlog: Int32) throws(Problem) -> Int32 {
        func fail(_ what: String) -> Problem { Problem(description: "cannot listen on \(path): \(what): \(String(cString: strerror(errno)))") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw fail("socket") }
        let staged = "\(path).\(getpid()).bind"
        let target = staged.utf8.count <= maxPathBytes ? staged : path
        unlink(staged)  // a leftover of a process that had this pid
        let previous = umask(mode_t(0o777 & ~mode))
        let bound = UnixAddress.bind(fd, to: target)
        umask(previous)
        guard bound == 0 else {
            let problem = fail("bind")
            close(fd)
            throw problem
        }
        do throws(Problem) {
            try setMode(target, mode)
            guard Glibc.listen(fd, backlog) == 0 else { throw fail("listen") }
            if target == staged {
                guard link(staged, path) == 0 else { throw fail("link") }
                unlink(staged)
            }
        } catch {
            close(fd)
            unlink(target)
            throw error
        }
        return fd
    }

    public static func setMode(_ path: String, _ mode: UInt32) throws(Problem) {
        guard chmod(path, mode_t(mode)) == 0 else {
            throw Problem(description: "cannot set mode \(String(mode, radix: 8)) on \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// A socket file this process bound, by device and inode: at a stop it
    /// is removed only if the path still holds that very socket, owned by
    /// us, so a socket someone else put there is never unlinked.
    public struct Created: Sendable {
        let path: String
        let device: UInt64
        let inode: UInt64
        let owner: UInt32

        init(_ path: String) throws(Problem) {
            var info = stat()
            guard lstat(path, &info) == 0 else {
                throw Problem(description: "the socket \(path) vanished after binding: \(String(cString: strerror(errno)))")
            }
            self.path = path
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            owner = info.st_uid
        }

        public func remove() {
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK, UInt64(info.st_dev) == device,
                  UInt64(info.st_ino) == inode, info.st_uid == owner
            else { return }
            unlink(path)
        }
    }

    /// The socket's directory must not let others replace the socket: one
    /// that others may write to without the sticky bit is refused; with the
    /// sticky bit (`/tmp`) it works but others can squat the name first, so
    /// the answer is a warning to log. The recommended home is `/run/fusebox`
    /// (0750).
    public static func checkDirectory(of path: String) throws(Problem) -> String? {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var info = stat()
        guard stat(directory.isEmpty ? "/" : directory, &info) == 0 else {
            throw Problem(description: "cannot use the socket directory \(directory): \(String(cString: strerror(errno)))")
        }
        let othersWrite = info.st_mode & (S_IWOTH | S_IWGRP) != 0 && (info.st_mode & S_IWOTH != 0 || info.st_gid != getegid())
        guard othersWrite else { return nil }
        guard info.st_mode & S_ISVTX != 0 else {
            throw Problem(description: "the socket directory \(directory) is writable by other users without the sticky bit, so anyone could replace the socket; use a directory only this user can write (recommended: /run/fusebox, mode 0750)")
        }
        return "the socket directory \(directory) is writable by other users (sticky bit set): another user can take the socket's name before fusebox starts; recommended: /run/fusebox, mode 0750"
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
