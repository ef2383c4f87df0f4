import NIOCore
import Synchronization

/// The live socket connections with their peers' user ids, so a reload that
/// revokes a uid can close its connections, and a shutdown whose clients do
/// not finish in time can close the rest.
public final class ConnectionRegistry: Sendable {
    private struct Entry: Sendable {
        var channel: any Channel
        var uid: UInt32?
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    func add(_ channel: any Channel, uid: UInt32?) {
        entries.withLock { $0[ObjectIdentifier(channel)] = Entry(channel: channel, uid: uid) }
    }

    func remove(_ channel: any Channel) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    public var count: Int { entries.withLock { $0.count } }

    /// Closes every connection whose peer is not in `allowed` (nil allows all); how many.
    @discardableResult
    public func closeRevoked(allowed: Set<UInt32>?) -> Int {
        guard let allowed else { return 0 }
        let revoked = entries.withLock { $0.values.filter { entry in entry.uid.map { !allowed.contains($0) } ?? true } }
        for entry in revoked { entry.channel.close(promise: nil) }
        return revoked.count
    }

    /// Closes every connection at once (a shutdown past its drain time).
    public func closeAll() {
        for entry in entries.withLock({ Array($0.values) }) { entry.channel.close(promise: nil) }
    }
}

/// Who may connect (`allowed_uids`), changeable by a reload.
public final class AllowedUsers: Sendable {
    private let uids: Mutex<Set<UInt32>?>

    public init(_ uids: Set<UInt32>?) { self.uids = Mutex(uids) }

    public var current: Set<UInt32>? { uids.withLock { $0 } }

    public func set(_ new: Set<UInt32>?) { uids.withLock { $0 = new } }

    func allows(_ uid: UInt32?) -> Bool {
        uids.withLock { allowed in allowed.map { set in uid.map(set.contains) ?? false } ?? true }
    }
}
