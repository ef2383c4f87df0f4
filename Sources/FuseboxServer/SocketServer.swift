import FuseboxConfig
import FuseboxCore
import FuseboxStateFile
import FuseboxWire
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two Unix sockets (the main one and the admin one) and the engine's
/// timer, as one service: it binds, serves until a graceful shutdown, then
/// stops accepting, lets every connection finish what it was sent, and
/// removes its socket files.
public final class SocketServer: Service, Sendable {
    public struct Settings: Sendable {
        public var socket: String
        public var adminSocket: String?
        public var mode: UInt32
        public var maxConnections: Int
        public var maxAdminConnections: Int
        public var maxPermitsPerConnection: Int
        public var idleTimeout: Duration?
        public var shutdownTimeout: Duration
        public var redactErrors: Bool
        public var allowedUIDs: Set<UInt32>?
        public var serverName: String
        /// Post breaker states in `<socket>.state` for the clients' fast path.
        public var fastPath: Bool
        /// How often the fast path's state file says the sidecar is alive;
        /// clients read it as stale after ten beats. (The engine's own timers
        /// are the scheduler's, not this.)
        public var heartbeat: TimeAmount = .milliseconds(100)

        public init(configuration: Configuration, serverName: String) {
            socket = configuration.socket
            adminSocket = configuration.adminSocket
            mode = configuration.socketMode
            maxConnections = configuration.maxConnections
            maxAdminConnections = configuration.maxAdminConnections
            maxPermitsPerConnection = configuration.maxPermitsPerConnection
            idleTimeout = configuration.idleTimeout
            shutdownTimeout = configuration.shutdownTimeout
            redactErrors = configuration.redactErrors
            allowedUIDs = configuration.allowedUIDs.map(Set.init)
            fastPath = configuration.fastPath
            self.serverName = serverName
        }
    }

    private let group: any EventLoopGroup
    private let engine: Engine
    private let settings: Settings
    private let hub: SubscriberHub
    private let observer: any ServerObserver
    private let logger: Logger
    public let limiter: ConnectionLimiter
    /// The admin socket's own budget, so apps filling theirs never lock the operator out.
    public let adminLimiter: ConnectionLimiter
    public let connections = ConnectionRegistry()
    public let allowed: AllowedUsers
    private let refusedLog = LogRateLimit()
    /// Completes when both sockets are bound (or fails with why they are not).
    public let bound: EventLoopPromise<Void>

    public init(
        group: any EventLoopGroup, engine: Engine, settings: Settings, hub: SubscriberHub,
        observer: any ServerObserver = NoServerObserver(), logger: Logger
    ) {
        self.group = group
        self.engine = engine
        self.settings = settings
        self.hub = hub
        self.observer = observer
        self.logger = logger
        self.limiter = ConnectionLimiter(limit: settings.maxConnections)
        self.adminLimiter = ConnectionLimiter(limit: settings.maxAdminConnections, setting: "max_admin_connections")
        self.allowed = AllowedUsers(settings.allowedUIDs)
        self.bound = group.next().makePromise(of: Void.self)
    }

    /// A reload changed `allowed_uids`: newcomers are checked against the new
    /// list, and connections of uids no longer on it are closed. How many.
    @discardableResult
    public func allow(_ uids: Set<UInt32>?) -> Int {
        allowed.set(uids)
        return connections.closeRevoked(allowed: uids)
    }

    public func run() async throws {
        let quiescing = ServerQuiescingHelper(group: group)
        var created: [SocketFile.Created] = []
        var listening: [(fd: Int32, path: String, admin: Bool)] = []
        var madeStateFile: StateFileBoard?
        do {
            for path in [settings.socket] + (settings.adminSocket.map { [$0] } ?? []) {
                if let warning = try SocketFile.checkDirectory(of: path) {
                    logger.warning("socket_directory_shared", metadata: ["socket": .string(path), "problem": .string(warning)])
                }
                try SocketFile.prepare(path)
            }
            // Both sockets listen before any connection is accepted, and the state file is made in
            // between: only once the socket is ours (a second sidecar refused here never replaces the
            // running one's file), and before the first `hello`, which names the file's boot id.
            for (path, admin) in [(settings.socket, false)] + (settings.adminSocket.map { [($0, true)] } ?? []) {
                listening.append((try SocketFile.listen(path, mode: settings.mode, backlog: 1_024), path, admin))
                created.append(try SocketFile.Created(path))
            }
            madeStateFile = settings.fastPath ? openStateFile() : nil
            let identity = madeStateFile?.identity
            while !listening.isEmpty {
                let next = listening.removeFirst()
                _ = try await serve(next.fd, path: next.path, admin: next.admin, stateFile: identity, quiescing: quiescing)
            }
        } catch {
            for socket in listening { close(socket.fd) }
            if let madeStateFile {
                engine.postStates(to: nil)
                madeStateFile.remove()
            }
            bound.fail(error)
            for file in created { file.remove() }
            throw error
        }
        bound.succeed()
        let stateFile = madeStateFile  // fixed from here on: the heartbeat captures it
        // A beat is one store to the mapped file under the board's own lock; it never takes the engine's.
        let heartbeat = stateFile.map { file in
            group.next().scheduleRepeatedTask(initialDelay: settings.heartbeat, delay: settings.heartbeat) { _ in file.beat() }
        }

        try? await gracefulShutdown()

        if let stateFile, let heartbeat {
            let stopped = group.next().makePromise(of: Void.self)
            heartbeat.cancel(promise: stopped)
            // Clients fall back to the socket from here on; nothing posts or beats after this.
            engine.postStates(to: nil)
            try? await stopped.futureResult.get()
            stateFile.remove()
        }
        let loop = group.next()
        let drained = loop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: drained)
        // Clients get `shutdown_timeout` to finish; one that never reads is then cut off.
        let connections = self.connections
        let cutOff = loop.scheduleTask(in: .nanoseconds(settings.shutdownTimeout.nanosecondsClamped)) {
            connections.closeAll()
        }
        try? await drained.futureResult.get()
        cutOff.cancel()
        for file in created { file.remove() }
    }

    /// The fast path's file, posted to from now on; nil (and a warning) when
    /// it cannot be made: clients then ask the socket, as without it.
    private func openStateFile() -> StateFileBoard? {
        do {
            let board = try StateFileBoard(
                socket: settings.socket, breakers: engine.breakerNames.count, socketMode: settings.mode,
                staleAfter: .nanoseconds(settings.heartbeat.nanoseconds * 10), logger: logger
            )
            engine.postStates(to: board)
            logger.info("fast_path_state_file", metadata: ["path": .string(board.path), "file": .string(board.dataPath)])
            return board
        } catch {
            logger.warning("fast_path_off", metadata: ["reason": .string(error.description)])
            return nil
        }
    }

    /// Serves the listening socket `fd` (bound at `path`) with NIO; the descriptor is NIO's from here on.
    private func serve(
        _ fd: Int32, path: String, admin: Bool, stateFile: StateFileBoard.Identity?, quiescing: ServerQuiescingHelper
    ) async throws -> Channel {
        let engine = self.engine
        let hub = self.hub
        let limiter = admin ? adminLimiter : self.limiter
        let observer = self.observer
        let serverName = settings.serverName
        let allowed = self.allowed
        let connections = self.connections
        let refusedLog = self.refusedLog
        let settings = self.settings
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: 64 * 1_024, high: 256 * 1_024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let session = ConnectionSession(
                        engine: engine, isAdmin: admin, serverName: serverName,
                        maxPermits: settings.maxPermitsPerConnection, redactErrors: settings.redactErrors, stateFile: stateFile,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(
                        AdmissionHandler(
                            limiter: limiter, observer: observer, allowed: allowed, registry: connections,
                            refusedLog: refusedLog, logger: logger
                        )
                    )
                    if let idle = settings.idleTimeout {
                        try channel.pipeline.syncOperations.addHandler(
                            IdleStateHandler(readTimeout: .nanoseconds(idle.nanosecondsClamped))
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        ProtocolHandler(session: session, hub: hub, observer: observer)
                    )
                }
            }
        // Bound by `run` rather than by NIO, which unlinks the path at close whoever
        // holds it by then; `SocketFile.Created` removes only our own socket.
        do {
            return try await bootstrap.withBoundSocket(fd).get()
        } catch {
            close(fd)
            throw SocketFile.Problem(description: "cannot listen on \(path): \(error)")
        }
    }
}
