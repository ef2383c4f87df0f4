import Synchronization

/// Counts open connections across both sockets against `max_connections`.
public final class ConnectionLimiter: Sendable {
    public let limit: Int
    private let open = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    public var current: Int { open.load(ordering: .relaxed) }

    /// Takes a place if one is free.
    public func enter() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    public func leave() { open.subtract(1, ordering: .relaxed) }
}
