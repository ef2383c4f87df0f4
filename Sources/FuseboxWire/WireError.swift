/// The closed set of error codes of protocol v1.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badJSON = "bad_json"
    case badRequest = "bad_request"
    case unknownOp = "unknown_op"
    case unknownBreaker = "unknown_breaker"
    case unknownChain = "unknown_chain"
    case unknownPermit = "unknown_permit"
    case lineTooLong = "line_too_long"
    case forbidden
    case unsupportedProtocol = "unsupported_protocol"
    case overloaded
}

/// A request that could not be served: the code, a message saying what was
/// expected, and the request's `id` when it could be read.
public struct WireError: Error, Equatable, Sendable {
    public var code: ErrorCode
    public var message: String
    public var id: RequestID?
    /// The request was a record sent with `"reply": false`: the error is counted, never written.
    public var unanswered = false

    public init(_ code: ErrorCode, _ message: String, id: RequestID? = nil) {
        self.code = code
        self.message = message
        self.id = id
    }
}
