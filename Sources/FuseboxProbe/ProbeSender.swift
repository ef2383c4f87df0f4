import AsyncHTTPClient
import FuseboxCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// One HTTP probe, cut off at its timeout whatever the server does (a server
/// that sends headers and then stalls the body is cut off too). Each breaker
/// has a client of its own: TLS with the system's roots, at most two
/// connections per host, no redirects (a health check that moved is a
/// finding, not something to follow). Its own, because a shared pool let two
/// hanging endpoints hold every connection to their host, so the probes of
/// healthy breakers on that host waited for one and timed out.
final class ProbeSender: Sendable {
    private struct Pooled {
        var client: HTTPClient
        var lastUsed: ContinuousClock.Instant
    }

    private let clients = Mutex<[String: Pooled]>([:])
    /// Enough of a body to read an error page; the rest is not waited for.
    static let bodyLimit = 64 * 1024
    /// A breaker's client unused this long is shut down (a reload removed the breaker, or its checks are rare).
    static let idleClient = Duration.seconds(600)

    init() {}

    private static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 2)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The breaker's own client; clients idle past `idleClient` are shut down on the way.
    private func client(for breaker: String) -> HTTPClient {
        let now = ContinuousClock.now
        let (client, idle) = clients.withLock { all -> (HTTPClient, [HTTPClient]) in
            let idle = all.filter { $0.key != breaker && now - $0.value.lastUsed > Self.idleClient }
            for name in idle.keys { all[name] = nil }
            let client = all[breaker]?.client ?? Self.makeClient()
            all[breaker] = Pooled(client: client, lastUsed: now)
            return (client, idle.values.map(\.client))
        }
        for old in idle { Task { try? await old.shutdown() } }
        return client
    }

    func send(_ ticket: ProbeTicket) async -> ProbeResult {
        let probe = ticket.policy
        let client = client(for: ticket.breaker)
        let started = ContinuousClock.now
        let outcome = await withTaskGroup(of: ProbeResult?.self) { group -> ProbeResult in
            group.addTask { await Self.exchange(probe, client: client, started: started) }
            group.addTask {
                try? await Task.sleep(for: probe.timeout)
                return Task.isCancelled ? nil : ProbeResult(outcome: .timeout, latency: ContinuousClock.now - started)
            }
            var first: ProbeResult?
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? ProbeResult(outcome: .timeout, latency: ContinuousClock.now - started)
        }
        return outcome
    }

    private static func exchange(_ probe: ProbePolicy, client: HTTPClient, started: ContinuousClock.Instant) async -> ProbeResult? {
        var request = HTTPClientRequest(url: probe.url)
        request.method = HTTPMethod(rawValue: probe.method)
        for header in probe.headers { request.headers.add(name: header.name, value: header.value) }
        if let body = probe.body { request.body = .bytes(ByteBuffer(string: body)) }
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(probe.timeout.nanosecondsClamped))
            let status = Int(response.status.code)
            _ = try? await response.body.collect(upTo: bodyLimit)
            if Task.isCancelled { return nil }
            let latency = ContinuousClock.now - started
            return ProbeResult(outcome: probe.expects(status) ? .success : .failure, latency: latency, status: status)
        } catch {
            if Task.isCancelled { return nil }
            let latency = ContinuousClock.now - started
            if let failure = error as? HTTPClientError, failure == .deadlineExceeded || failure == .readTimeout || failure == .connectTimeout {
                return ProbeResult(outcome: .timeout, latency: latency)
            }
            return ProbeResult(outcome: .failure, latency: latency, error: Self.describe(error))
        }
    }

    /// A short, secret-free reason: the error's own text, one line, bounded.
    private static func describe(_ error: any Error) -> String {
        let text = String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
        return String(text.prefix(200))
    }

    func shutdown(logger: Logger) async {
        let all = clients.withLock { all in
            defer { all.removeAll() }
            return all.values.map(\.client)
        }
        for client in all {
            do { try await client.shutdown() } catch { logger.warning("probe client did not shut down cleanly: \(error)") }
        }
    }
}
