#if canImport(Glibc)
import Glibc
#endif

import FuseboxCore
import Logging
import Synchronization

/// The board the engine posts to: the current `StateFile`, replaced by a
/// larger one when a reload brings more breakers than it has slots. The new
/// file keeps the boot id and pid (the sidecar did not restart), is put in
/// place before the old one's heartbeat goes to 0, and clients that still
/// read the old one find it stale and open the path again. Posts, beats and
/// the replacement take one lock, so no post or beat ever meets a file that
/// is being unmapped.
public final class StateFileBoard: BreakerStateBoard, Sendable {
    /// What `hello` tells clients, so they trust only the file this sidecar made.
    public struct Identity: Sendable, Equatable {
        public var bootID: UInt64
        public var pid: Int32
    }

    private let current: Mutex<StateFile>
    private let socket: String
    private let socketMode: UInt32
    private let staleAfter: Duration
    private let logger: Logger
    public let identity: Identity
    /// Where clients look (`<socket>.state`).
    public let path: String

    /// Room for twice the breakers there are, and never fewer than 256, so
    /// that most reloads that add breakers post them without a new file.
    public static func capacity(for breakers: Int) -> Int { max(256, min(breakers, Int.max / 2) * 2) }

    public init(socket: String, breakers: Int, socketMode: UInt32, staleAfter: Duration, logger: Logger) throws(StateFile.Problem) {
        let file = try StateFile.create(beside: socket, slots: Self.capacity(for: breakers), socketMode: socketMode, staleAfter: staleAfter)
        current = Mutex(file)
        self.socket = socket
        self.socketMode = socketMode
        self.staleAfter = staleAfter
        self.logger = logger
        identity = Identity(bootID: file.bootID, pid: getpid())
        path = file.path
    }

    /// The mapped file now (`path` itself, or the `/dev/shm` file it links to).
    public var dataPath: String { current.withLock { $0.dataPath } }
    public var slots: Int { current.withLock { $0.slots } }

    public func post(_ state: PostedState, slot: Int) {
        current.withLock { $0.post(state, slot: slot) }
    }

    public func resize(to count: Int) {
        current.withLock { file in
            if count > file.slots {
                do throws(StateFile.Problem) {
                    let grown = try StateFile.create(
                        beside: socket, slots: Self.capacity(for: count), socketMode: socketMode, staleAfter: staleAfter, bootID: file.bootID
                    )
                    file.remove()  // after the new one is in place: its heartbeat goes to 0, clients open the path again
                    logger.info("fast_path_state_file_grown", metadata: [
                        "path": .string(grown.path), "file": .string(grown.dataPath), "slots": .stringConvertible(grown.slots),
                    ])
                    file = grown
                } catch {
                    // The breakers past the slots are not posted: their clients ask the socket, as without a fast path.
                    logger.warning("fast_path_state_file_full", metadata: [
                        "breakers": .stringConvertible(count), "slots": .stringConvertible(file.slots), "reason": .string(error.description),
                    ])
                }
            }
            file.truncate(to: count)
        }
    }

    /// Tells clients the sidecar is alive (the socket server's heartbeat calls it).
    public func beat() {
        current.withLock { $0.beat() }
    }

    /// Removes the file (see `StateFile.remove`).
    public func remove() {
        current.withLock { $0.remove() }
    }
}
