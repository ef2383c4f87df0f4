import FuseboxConfig
import FuseboxCore
import FuseboxTelemetry
import FuseboxWire
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import FuseboxJSON

/// What `/readyz` checks: the socket is bound, so decisions are served. The
/// store's health is reported beside it but never makes the sidecar unready:
/// decisions do not need the disk, and a full disk must not pull every pod
/// out of its Service.
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

    /// Ready, and one line per check (the store's for information only).
    public func check() -> (ready: Bool, checks: [(String, String)]) {
        let socket = socketBound.load(ordering: .relaxed)
        let store = storeEnabled ? (storeProblem().map { "failing: \($0)" } ?? "ok") : "off"
        return (socket, [("socket", socket ? "ok" : "not bound"), ("store", store)])
    }
}

/// The HTTP side: `/metrics` for Prometheus, `/healthz`, `/readyz` and
/// `/v1/breakers` (the `status` snapshot), served by Hummingbird.
public enum HTTPEndpoints {
    /// How many connections HTTP may hold and for how long: a flood from any
    /// local user (HTTP has no access control) must never take the
    /// descriptors the Unix sockets need.
    public struct Limits: Sendable {
        public var maxConnections = 128
        public var headerTimeout: Duration = .seconds(10)
        public var idleTimeout: Duration = .seconds(60)
        /// Serve `/v1/breakers`; off leaves metrics and health only.
        public var json = true

        public init() {}

        public init(configuration: Configuration) {
            maxConnections = configuration.httpMaxConnections
            headerTimeout = configuration.httpHeaderTimeout
            idleTimeout = configuration.httpIdleTimeout
            json = configuration.httpJSON
        }
    }

    public static func application(
        endpoint: HTTPEndpoint, engine: Engine, metrics: FuseboxMetrics, readiness: Readiness, limits: Limits = Limits(),
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
        router.head("/healthz") { _, _ -> Response in Response(status: .ok) }
        let readyz: @Sendable (Request, BasicRequestContext) -> Response = { _, _ in
            let (ready, checks) = readiness.check()
            return json(ready ? .ok : .serviceUnavailable) { writer in
                writer.bool("ready", ready)
                writer.object("checks") { inner in
                    for (name, state) in checks { inner.value(name, .string(state)) }
                }
            }
        }
        router.get("/readyz", use: readyz)
        if limits.json {
            router.get("/v1/status", use: readyz)
            router.get("/v1/breakers") { _, _ -> Response in
                let snapshots = (try? engine.snapshot()) ?? []
                return json(.ok) { writer in
                    writer.objects("breakers", snapshots) { inner, snapshot in ResponseEncoder.writeSnapshot(&inner, snapshot) }
                }
            }
        }
        let endpoints = ["/metrics", "/healthz", "/readyz"] + (limits.json ? ["/v1/status", "/v1/breakers"] : [])
        let headerTimeout = TimeAmount.nanoseconds(limits.headerTimeout.nanosecondsClamped)
        var quiet = logger
        quiet.logLevel = .warning
        return Application(
            router: router,
            server: .http1(configuration: .init(
                additionalChannelHandlers: [HTTPRequestDeadline(timeout: headerTimeout)],
                idleTimeout: .nanoseconds(limits.idleTimeout.nanosecondsClamped)
            )),
            configuration: ApplicationConfiguration(
                address: .hostname(endpoint.host, port: endpoint.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections)
            ),
            onServerRunning: { channel in
                logger.notice("http_listening", metadata: [
                    "address": .string(channel.localAddress.map { "\($0.ipAddress ?? endpoint.host):\($0.port ?? endpoint.port)" } ?? endpoint.description),
                    "endpoints": .array(endpoints.map { .string($0) }),
                    "max_connections": .stringConvertible(limits.maxConnections),
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
