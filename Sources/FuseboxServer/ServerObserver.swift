import FuseboxTelemetry
import FuseboxWire

/// What the socket layer reports besides engine events: for metrics.
public protocol ServerObserver: Sendable {
    func served(op: Request.Op?, error: ErrorCode?)
    /// A request line answered (or queued), and how long deciding and encoding took.
    func served(_ reply: ConnectionSession.Reply, took: Duration)
    func connectionOpened()
    func connectionClosed()
    func subscriberDropped(events: Int)
}

extension ServerObserver {
    public func served(op: Request.Op?, error: ErrorCode?) {}
    public func served(_ reply: ConnectionSession.Reply, took: Duration) { served(op: reply.op, error: reply.error) }
    public func connectionOpened() {}
    public func connectionClosed() {}
    public func subscriberDropped(events: Int) {}
}

public struct NoServerObserver: ServerObserver {
    public init() {}
}

extension FuseboxMetrics: ServerObserver {
    public func served(op: Request.Op?, error: ErrorCode?) { countRequest(op: op?.rawValue, error: error) }
    public func served(_ reply: ConnectionSession.Reply, took: Duration) {
        countRequest(op: reply.op?.rawValue, error: reply.error, took: took)
        if let chain = reply.chain { countRoute(chain: chain) }
        if reply.clientFailOpen > 0 { clientsFailedOpen(reply.clientFailOpen) }
    }
    public func connectionOpened() { clientConnected() }
    public func connectionClosed() { clientDisconnected() }
}
