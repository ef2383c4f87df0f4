import FuseboxCore
import FuseboxWire

/// The decision path's own code without a socket: each line decoded by
/// `RequestDecoder`, decided by the engine and answered by `ResponseEncoder`,
/// as `ConnectionSession` does for every line the server reads. Run under
/// `valgrind --tool=callgrind` for repeatable instruction counts per pair
/// (valgrind cannot run `fusebox serve` itself on this machine):
///
///   strip -o /tmp/fbb .build/release/fusebox-bench
///   valgrind --tool=callgrind /tmp/fbb protocol-pairs 10000
enum ProtocolBench {
    static func pairs(_ count: Int) throws {
        let engine = try EngineBench.makeEngine()
        let acquire = Array(#"{"op":"acquire","breaker":"openai","timeout_ms":2000,"id":1}"#.utf8)
        // The client's part (putting the permit into the report line) is done by copying bytes, so that
        // the count is the sidecar's work: decode, decide, encode.
        var report = Array(#"{"op":"report","permit":"0000000000000000","status":200,"latency_ms":812,"id":2}"#.utf8)
        let permitAt = #"{"op":"report","permit":""#.utf8.count
        var answered = 0
        for _ in 0..<count {
            let decision = try serve(acquire) { request, id in
                guard case .acquire(let breaker, let cost, _) = request else { throw BenchError("not an acquire") }
                let decision = try engine.acquire(breaker, cost: cost)
                return (ResponseEncoder.decision(id, decision), decision.permit?.id)
            }
            guard let permit = decision.1 else { throw BenchError("refused") }
            permit.withQuotedHex { hex in report.replaceSubrange(permitAt..<(permitAt + 16), with: hex.dropFirst().dropLast()) }
            let state = try serve(report) { request, id in
                guard case .report(let permit, let report) = request else { throw BenchError("not a report") }
                return (ResponseEncoder.state(id, try engine.report(permit, report)), nil)
            }
            answered += decision.0.count + state.0.count
        }
        print("\(count) acquire+report pairs through decoder, engine and encoder; \(answered) bytes answered")
    }

    private static func serve(
        _ line: [UInt8], _ body: (Request, RequestID?) throws -> ([UInt8], PermitID?)
    ) throws -> ([UInt8], PermitID?) {
        let decoded = line.withUnsafeBytes { RequestDecoder.decode($0) }
        guard case .success(let envelope) = decoded else { throw BenchError("did not decode: \(decoded)") }
        return try body(envelope.request, envelope.id)
    }
}
