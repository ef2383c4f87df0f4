import FuseboxWire
import Logging
import NIOCore

#if os(Linux)
import Glibc
#else
#error("Fusebox runs on Linux only: it reads peer credentials with SO_PEERCRED and uses Glibc directly")
#endif

/// The door of a connection, first in its pipeline: the peer's uid must be in
/// `allowed_uids` and the socket under its connection limit. A refused
/// connection gets one structured error line and is closed; nothing it sends
/// reaches the handlers behind this one, which see `channelActive` only for
/// an admitted connection.
public final class AdmissionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let limiter: ConnectionLimiter
    private let observer: any ServerObserver
    private let allowed: AllowedUsers
    private let registry: ConnectionRegistry
    private let refusedLog: LogRateLimit
    private let logger: Logger
    private var admitted = false

    public init(
        limiter: ConnectionLimiter, observer: any ServerObserver, allowed: AllowedUsers = AllowedUsers(nil),
        registry: ConnectionRegistry = ConnectionRegistry(), refusedLog: LogRateLimit = LogRateLimit(),
        logger: Logger = Logger(label: "fusebox")
    ) {
        self.limiter = limiter
        self.observer = observer
        self.allowed = allowed
        self.registry = registry
        self.refusedLog = refusedLog
        self.logger = logger
    }

    public func channelActive(context: ChannelHandlerContext) {
        // On the event loop the option is read at once, so this decides before any read.
        // The uid is kept even when anyone may connect: a reload may set allowed_uids later.
        Self.peerCredentials(context.channel).whenComplete { result in
            let peer = try? result.get()
            if self.allowed.allows(peer?.uid) { return self.admit(context: context, uid: peer?.uid) }
            if let suppressed = self.refusedLog.admit() {
                self.logger.warning("connection_refused", metadata: [
                    "reason": .string("peer uid not in allowed_uids"),
                    "peer_uid": peer.map { .stringConvertible(Int($0.uid)) } ?? .string("unknown"),
                    "peer_pid": peer.map { .stringConvertible(Int($0.pid)) } ?? .string("unknown"),
                    "not_logged_since_last": .stringConvertible(suppressed),
                ])
            }
            self.observer.served(op: nil, error: .forbidden)
            self.refuse(context: context, WireError(.forbidden, "this user may not use the sidecar (allowed_uids)"))
        }
    }

    private func admit(context: ChannelHandlerContext, uid: UInt32?) {
        guard limiter.enter() else {
            observer.served(op: nil, error: .overloaded)
            let limit = "\(limiter.limit) connections (\(limiter.setting))"
            refuse(context: context, WireError(.overloaded, "the socket is at its limit of \(limit); retry later"))
            return
        }
        admitted = true
        registry.add(context.channel, uid: uid)
        observer.connectionOpened()
        context.fireChannelActive()
    }

    private func refuse(context: ChannelHandlerContext, _ error: WireError) {
        let channel = context.channel
        let buffer = channel.allocator.buffer(bytes: ResponseEncoder.error(error))
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if admitted { context.fireChannelRead(data) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if admitted { context.fireChannelReadComplete() }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if admitted { context.fireUserInboundEventTriggered(event) }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if admitted {
            registry.remove(context.channel)
            limiter.leave()
            observer.connectionClosed()
        }
        context.fireChannelInactive()
    }

    /// What SO_PEERCRED returns (Linux's `struct ucred`).
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The connecting process's pid and uid; fails where the channel is not a
    /// Unix socket (an embedded channel in tests).
    static func peerCredentials(_ channel: Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let soPeerCred: Int32 = 17  // SO_PEERCRED on Linux; glibc hides the name behind _GNU_SOURCE
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(soPeerCred))
    }
}
