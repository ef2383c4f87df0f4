import FuseboxTelemetry
import FuseboxWire

/// What the socket layer reports besides engine events: for metrics.
public protocol ServerObserver: Sendable {
    func served(op: Request.Op?, error: ErrorCode?)
    func connectionOpened()
    func connectionClosed()
    func subscriberDropped(events: Int)
}

extension ServerObserver {
    public func served(op: Request.Op?, error: ErrorCode?) {}
    public func connectionOpened() {}
    public func connectionClosed() {}
    public func subscriberDropped(events: Int) {}
}

public struct NoServerObserver: ServerObserver {
    public init() {}
}

extension FuseboxMetrics: ServerObserver {
    public func served(op: Request.Op?, error: ErrorCode?) { countRequest(op: op?.rawValue, error: error) }
    public func connectionOpened() { clientConnected() }
    public func connectionClosed() { clientDisconnected() }
}
