import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import FuseboxWire
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// What `/readyz` checks: the socket is bound and the store is writable.
public final class Readiness: Sendable {
    private let socketBound = Atomic<Bool>(false)
    /// The store's problem, if it has one; nil when healthy or off.
    private let storeProblem: @Sendable () -> String?
    private let storeEnabled: Bool

    public init(storeEnabled: Bool, storeProblem: @escaping @Sendable () -> String? = { nil }) {
        self.storeEnabled = storeEnabled
        self.storeProblem = storeProblem
    }

    public func markSocketBound() { socketBound.store(true, ordering: .relaxed) }

    /// Ready, and one line per check.
    public func check() -> (ready: Bool, checks: [(String, String)]) {
        let socket = socketBound.load(ordering: .relaxed)
        let store = storeEnabled ? (storeProblem().map { "failing: \($0)" } ?? "ok") : "off"
        return (socket && !store.hasPrefix("failing"), [("socket", socket ? "ok" : "not bound"), ("store", store)])
    }
}

/// The HTTP side: `/metrics` for Prometheus, `/healthz`, `/readyz` and
/// `/v1/breakers` (the `status` snapshot), served by Hummingbird.
public enum HTTPEndpoints {
    public static func application(
        endpoint: HTTPEndpoint, engine: Engine, metrics: FuseboxMetrics, readiness: Readiness,
        beforeScrape: @escaping @Sendable () -> Void = {}, logger: Logger
    ) -> some Service {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            beforeScrape()
            let body = metrics.render((try? engine.snapshot()) ?? [])
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
            )
        }
        router.get("/healthz") { _, _ -> Response in
            json(.ok) { $0.string("status", "ok") }
        }
        router.get("/readyz") { _, _ -> Response in
            let (ready, checks) = readiness.check()
            return json(ready ? .ok : .serviceUnavailable) { writer in
                writer.bool("ready", ready)
                writer.object("checks") { inner in
                    for (name, state) in checks { inner.dynamicString(name, state) }
                }
            }
        }
        router.get("/v1/breakers") { _, _ -> Response in
            let snapshots = (try? engine.snapshot()) ?? []
            return json(.ok) { writer in
                writer.objects("breakers", snapshots) { inner, snapshot in ResponseEncoder.writeSnapshot(&inner, snapshot) }
            }
        }
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(endpoint.host, port: endpoint.port), serverName: nil),
            onServerRunning: { channel in
                logger.notice("http_listening", metadata: [
                    "address": .string(channel.localAddress.map { "\($0.ipAddress ?? endpoint.host):\($0.port ?? endpoint.port)" } ?? endpoint.description),
                    "endpoints": .array(["/metrics", "/healthz", "/readyz", "/v1/breakers"].map { .string($0) }),
                ])
            },
            logger: quiet
        )
    }

    static func json(_ status: HTTPResponse.Status, _ body: (inout JSONWriter) -> Void) -> Response {
        var writer = JSONWriter()
        body(&writer)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: writer.finish()))
        )
    }
}
