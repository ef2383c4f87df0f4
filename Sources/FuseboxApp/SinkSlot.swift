import FuseboxCore
import Synchronization

/// A sink filled in after the engine is made (for one that needs the engine
/// itself); events before that are not kept.
final class SinkSlot: EngineEventSink {
    private let sink = Mutex<(any EngineEventSink)?>(nil)

    func fill(_ sink: any EngineEventSink) { self.sink.withLock { $0 = sink } }

    func receive(_ events: [EngineEvent]) {
        sink.withLock { $0 }?.receive(events)
    }
}
