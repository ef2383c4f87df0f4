/// A holder of permits, in practice one client connection: permits are
/// tagged with it so it can be capped (`max_permits_per_connection`) and so
/// its permits can all be released when it goes away. A stale handle (its
/// owner was closed and the entry reused) matches nothing.
public struct PermitOwner: Hashable, Sendable {
    let index: Int32
    let serial: UInt32
}

/// The engine's owners: a slab of entries reused through a free list, each
/// with its cap, its count and the head of its list of permit slots.
struct PermitOwners: Sendable {
    struct Entry: Sendable {
        var serial: UInt32 = 0
        var live = false
        var limit = 0
        var held = 0
        /// First slot of this owner's permits in the `PermitSlab` (linked through `ownerNext`).
        var head: Int32 = -1
        var nextFree: Int32 = -1
    }

    private(set) var entries: [Entry] = []
    private var freeHead: Int32 = -1
    private var serial: UInt32 = 0

    subscript(index: Int32) -> Entry {
        _read { yield entries[Int(index)] }
        _modify { yield &entries[Int(index)] }
    }

    mutating func open(limit: Int) -> PermitOwner {
        let index: Int32
        if freeHead >= 0 {
            index = freeHead
            freeHead = entries[Int(index)].nextFree
        } else {
            entries.append(Entry())
            index = Int32(entries.count - 1)
        }
        serial &+= 1
        entries[Int(index)] = Entry(serial: serial, live: true, limit: limit)
        return PermitOwner(index: index, serial: serial)
    }

    /// The live entry behind `owner`, if it is still open.
    func find(_ owner: PermitOwner) -> Int32? {
        guard owner.index >= 0, Int(owner.index) < entries.count else { return nil }
        let entry = entries[Int(owner.index)]
        return entry.live && entry.serial == owner.serial ? owner.index : nil
    }

    /// Frees an entry that holds no permits.
    mutating func close(_ index: Int32) {
        entries[Int(index)] = Entry(nextFree: freeHead)
        freeHead = index
    }
}
