import Synchronization

/// Counts one socket's open connections against its limit (`max_connections`
/// for the main socket, `max_admin_connections` for the admin one).
public final class ConnectionLimiter: Sendable {
    public let limit: Int
    /// The configuration key that sets `limit`, for the refusal's message.
    public let setting: String
    private let open = Atomic<Int>(0)

    public init(limit: Int, setting: String = "max_connections") {
        self.limit = limit
        self.setting = setting
    }

    public var current: Int { open.load(ordering: .relaxed) }

    /// Takes a place if one is free.
    public func enter() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    public func leave() { open.subtract(1, ordering: .relaxed) }
}
