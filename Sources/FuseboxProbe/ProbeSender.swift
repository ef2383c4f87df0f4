import AsyncHTTPClient
import FuseboxCore
import Logging
import NIOCore
import NIOHTTP1

/// One HTTP probe, cut off at its timeout whatever the server does (a server
/// that sends headers and then stalls the body is cut off too). The client
/// is shared by all probes: TLS with the system's roots, at most two
/// connections per host, no redirects (a health check that moved is a
/// finding, not something to follow).
final class ProbeSender: Sendable {
    private let client: HTTPClient
    /// Enough of a body to read an error page; the rest is not waited for.
    static let bodyLimit = 64 * 1024

    init() {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 2)
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func send(_ probe: ProbePolicy) async -> ProbeResult {
        let started = ContinuousClock.now
        let outcome = await withTaskGroup(of: ProbeResult?.self) { group -> ProbeResult in
            group.addTask { [client] in await Self.exchange(probe, client: client, started: started) }
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
        do { try await client.shutdown() } catch { logger.warning("probe client did not shut down cleanly: \(error)") }
    }
}
