import Dispatch
import FuseboxStore
import ServiceLifecycle

/// Runs the store writer for the life of the sidecar. Listed first in the
/// service group so it stops last: by then the sockets are closed, and its
/// stop flushes everything the engine produced.
public struct StoreService: Service {
    private let writer: StoreWriter
    private let version: String
    private let config: String

    public init(writer: StoreWriter, version: String, config: String) {
        self.writer = writer
        self.version = version
        self.config = config
    }

    public func run() async throws {
        try writer.start(version: version, config: config)
        try? await gracefulShutdown()
        let writer = self.writer
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                writer.stop()
                done.resume()
            }
        }
    }
}
