#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `sockaddr_un` for a path, and the calls that take one.
public enum UnixAddress {
    /// The longest path a Unix socket address holds (sun_path less its NUL).
    public static let maxPathBytes = 107

    public static func make(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(maxPathBytes))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// `connect(2)` to `path`; 0 or -1 with errno set.
    public static func connect(_ fd: Int32, to path: String) -> Int32 {
        var address = make(path)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// `bind(2)` to `path`; 0 or -1 with errno set.
    public static func bind(_ fd: Int32, to path: String) -> Int32 {
        var address = make(path)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
