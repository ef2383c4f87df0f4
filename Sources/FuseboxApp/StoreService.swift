import Dispatch
import FuseboxStore
import ServiceLifecycle

/// Stops the (already started) store writer when the sidecar stops. Listed
/// first in the service group so it stops last: by then the sockets are
/// closed, and its stop flushes everything the engine produced.
public struct StoreService: Service {
    private let writer: StoreWriter

    public init(writer: StoreWriter) { self.writer = writer }

    public func run() async throws {
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
