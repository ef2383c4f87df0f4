import Dispatch
import Synchronization

/// Runs async work to completion from a synchronous command (the CLI's
/// main thread, never an event loop).
enum BlockingTask {
    static func run(_ body: @escaping @Sendable () async throws -> Void) -> Result<Void, any Error> {
        let outcome = Mutex<Result<Void, any Error>>(.success(()))
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await body() } catch { outcome.withLock { $0 = .failure(error) } }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0 }
    }
}
