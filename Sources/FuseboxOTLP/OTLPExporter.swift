import AsyncHTTPClient
import FuseboxConfig
import FuseboxCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Pushes the sidecar's metrics (the series `/metrics` serves) and its
/// transitions (as log records) to an OpenTelemetry collector over OTLP/HTTP,
/// every `interval` and once more at shutdown. Off the decision path: the
/// engine only appends transitions to a bounded buffer here.
public final class OTLPExporter: Service, EngineEventSink {
    private let settings: OTLPSettings
    private let encoder: OTLPEncoder
    private let clock: any BreakerClock
    private let logger: Logger
    private let started: Timestamp
    /// The exposition text to export (`FuseboxMetrics.render` over the engine's snapshots); set once the engine exists.
    private let exposition = Mutex<(@Sendable () -> [UInt8])?>(nil)
    /// Transitions not yet accepted by the collector, oldest first and numbered; at most `bufferLimit`, the oldest dropped beyond.
    private let pending = Mutex<(transitions: [(number: UInt64, transition: Transition)], next: UInt64, dropped: Int)>(([], 0, 0))
    /// When a failed export was last logged: at most one warning a minute.
    private let lastWarning = Mutex<Timestamp?>(nil)

    static let bufferLimit = 10_000

    public init(settings: OTLPSettings, instance: String, version: String, clock: any BreakerClock, logger: Logger) {
        self.settings = settings
        encoder = OTLPEncoder(instance: instance, version: version)
        self.clock = clock
        self.logger = logger
        started = clock.now()
    }

    /// Where the metrics come from: called at each export.
    public func export(metrics render: @escaping @Sendable () -> [UInt8]) {
        exposition.withLock { $0 = render }
    }

    public func receive(_ events: [EngineEvent]) {
        var transitions: [Transition] = []
        for event in events { if case .transitioned(let t) = event { transitions.append(t) } }
        guard !transitions.isEmpty else { return }
        pending.withLock { pending in
            for t in transitions {
                pending.transitions.append((pending.next, t))
                pending.next &+= 1
            }
            let over = pending.transitions.count - Self.bufferLimit
            if over > 0 {
                pending.transitions.removeFirst(over)
                pending.dropped += over
            }
        }
    }

    public func run() async throws {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)))
        configuration.decompression = .disabled
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.settings.interval) }
            // A stop abandons a metrics export under way (it may take seconds with thousands of breakers).
            _ = try? await cancelWhenGracefulShutdown { await self.exportMetrics(client) }
            await exportLogs(client)
        }
        // Stopping: what was decided since the last export goes out too (the logs; the metrics' last values
        // are the collector's already, to within an interval).
        await exportLogs(client)
        try? await client.shutdown()
    }

    /// The metrics, rendered, read back and encoded on a thread of NIO's
    /// blocking pool: with 10,000 breakers that takes seconds, which must
    /// hold up neither the cooperative pool (the scheduler, the fleet) nor a
    /// stop (cancelled, this returns at once and the thread's work is dropped).
    private func exportMetrics(_ client: HTTPClient) async {
        guard let render = exposition.withLock({ $0 }) else { return }
        let encoder = self.encoder, started = self.started, now = clock.now()
        let waiting = Mutex<CheckedContinuation<[UInt8]?, Never>?>(nil)
        let body = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
                waiting.withLock { $0 = continuation }
                if Task.isCancelled {
                    waiting.withLock { $0.take() }?.resume(returning: nil)
                    return
                }
                NIOThreadPool.singleton.submit { state in
                    let body = state == .active ? encoder.metrics(ExpositionReader.families(render()), start: started, now: now) : nil
                    waiting.withLock { $0.take() }?.resume(returning: body)
                }
            }
        } onCancel: {
            waiting.withLock { $0.take() }?.resume(returning: nil)
        }
        if let body { await post(body, to: "/v1/metrics", client) }
    }

    /// The transitions waiting, kept for the next round if the collector refuses them.
    private func exportLogs(_ client: HTTPClient) async {
        let now = clock.now()
        let dropped = pending.withLock { pending in
            defer { pending.dropped = 0 }
            return pending.dropped
        }
        if dropped > 0 {
            logger.warning("otlp_logs_dropped", metadata: ["dropped": .stringConvertible(dropped), "limit": .stringConvertible(Self.bufferLimit)])
        }
        // Batches of at most 1,000 records, until none is waiting or the collector refuses one.
        while true {
            let batch = pending.withLock { Array($0.transitions.prefix(1_000)) }
            guard let last = batch.last?.number,
                  await post(encoder.logs(batch.map(\.transition), now: now), to: "/v1/logs", client)
            else { return }
            // Only what was sent leaves the buffer; what came (or was dropped) meanwhile is told apart by its number.
            pending.withLock { pending in pending.transitions.removeAll { $0.number <= last } }
        }
    }

    @discardableResult
    private func post(_ body: [UInt8], to path: String, _ client: HTTPClient) async -> Bool {
        var request = HTTPClientRequest(url: settings.endpoint + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for header in settings.headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(settings.timeout.nanosecondsClamped))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            guard (200..<300).contains(response.status.code) else {
                warn(path, "HTTP \(response.status.code)")
                return false
            }
            return true
        } catch {
            warn(path, "\(error)")
            return false
        }
    }

    private func warn(_ path: String, _ problem: String) {
        let now = clock.now()
        let due = lastWarning.withLock { last in
            guard last.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        logger.warning("otlp_export_failed", metadata: [
            "endpoint": .string(settings.endpoint + path), "error": .string(problem),
            "note": .string("retried every interval; transitions are kept (up to \(Self.bufferLimit)); logged at most once a minute"),
        ])
    }
}
