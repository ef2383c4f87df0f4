import Logging
import NIOCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// systemd's readiness protocol (`Type=notify`), without libsystemd: one
/// datagram to `$NOTIFY_SOCKET` saying `READY=1` once the sockets are bound,
/// and `STOPPING=1` as soon as a graceful shutdown begins.
struct SystemdNotifier: Service {
    let socketPath: String
    let bound: EventLoopFuture<Void>
    let logger: Logger

    /// Nil unless systemd (or a test) set `NOTIFY_SOCKET`.
    init?(environment: [String: String], bound: EventLoopFuture<Void>, logger: Logger) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        socketPath = path
        self.bound = bound
        self.logger = logger
    }

    func run() async throws {
        guard (try? await bound.get()) != nil else { return }  // start failed: the group is already stopping
        send("READY=1\nSTATUS=serving decisions\nMAINPID=\(getpid())")
        try? await gracefulShutdown()
        send("STOPPING=1\nSTATUS=draining connections")
    }

    /// One datagram; a failure is logged, never fatal (systemd then times the start out and says so).
    func send(_ message: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return report(errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // "@name" is Linux's abstract namespace: a leading NUL, and the length counts only the name.
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return report(ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL), $0, length) }
        }
        if sent < 0 { report(errno) }
    }

    private func report(_ code: Int32) {
        logger.warning("notify_failed", metadata: [
            "notify_socket": .string(socketPath), "error": .string(String(cString: strerror(code))),
        ])
    }
}
