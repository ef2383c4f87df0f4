/// A permit's identity: a slot in the engine's permit table (the low 24 bits)
/// and 40 bits from the kernel's CSPRNG that tell a reused slot from its
/// previous holder and make the id unguessable. Opaque to clients.
public struct PermitID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    static let slotBits: UInt64 = 24
    static let slotMask: UInt64 = (1 << slotBits) - 1

    var slot: Int { Int(rawValue & Self.slotMask) }

    /// Sixteen lower-case hexadecimal digits, leading zeros kept: how permits
    /// travel on the wire (docs/protocol.md promises 64 bits in hexadecimal).
    public var description: String { withQuotedHex { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } }

    /// The id as the wire carries it, a JSON string (`"` + sixteen digits + `"`), made on the stack:
    /// answers write it without a `String` in between (every acquire answer has one).
    public func withQuotedHex<T>(_ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 18) { buffer in
            buffer[0] = UInt8(ascii: "\"")
            buffer[17] = UInt8(ascii: "\"")
            for index in 0..<16 {
                let nibble = UInt8(truncatingIfNeeded: rawValue >> UInt64(60 - 4 * index)) & 0x0F
                buffer[index + 1] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
            }
            return body(UnsafeBufferPointer(buffer))
        }
    }

    /// One to sixteen hexadecimal digits (either case), not all zero; anything else is no permit.
    public init?(_ text: String) {
        var text = text
        guard let value = text.withUTF8(Self.parse) else { return nil }
        rawValue = value
    }

    /// The same from bytes in memory (a request line read in place).
    public init?(digits: UnsafeBufferPointer<UInt8>) {
        guard let value = Self.parse(digits) else { return nil }
        rawValue = value
    }

    private static func parse(_ digits: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var count = 0
        for byte in digits {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x37
            case 0x61...0x66: digit = byte - 0x57
            default: return nil
            }
            count += 1
            guard count <= 16 else { return nil }
            value = value << 4 | UInt64(digit)
        }
        guard count > 0, value != 0 else { return nil }
        return value
    }
}

/// A granted call: the lease the app holds until it reports.
public struct Permit: Sendable, Equatable {
    public var id: PermitID
    public var breaker: String
    /// The breaker's generation when the permit was issued.
    public var generation: UInt64
    /// Whether this permit holds one of the half-open probe slots.
    public var probe: Bool
    /// After this the permit counts as a timeout, unless renewed.
    public var deadline: Timestamp
    /// How long a renewal extends it: the breaker's `permit_ttl`. A client
    /// renews a long call's permit well within it.
    public var ttl: Duration = .zero
}

/// Why a permit ends without a report of the call's result.
public enum ReleaseReason: String, Sendable {
    /// The client went away (disconnect): counted in metrics, not against the provider.
    case abandoned
    /// The app gave up on the call itself.
    case cancelled
}

/// The table of outstanding permits: a slab of slots reused through a free
/// list, each slot linked into its breaker's list in issue order, so issuing,
/// finding, reporting and expiring a permit are all O(1) without hashing or
/// allocating (once the slab has grown to the peak in flight).
struct PermitSlab: Sendable {
    struct Slot: Sendable {
        var id: UInt64 = 0          // 0: free
        var breaker: Int32 = -1
        var probe = false
        /// Tokens charged to the token budget at acquire, settled at report.
        var cost: UInt32 = 0
        var generation: UInt64 = 0
        var issuedAt = Timestamp(nanoseconds: 0)
        var deadline = Timestamp(nanoseconds: 0)
        var previous: Int32 = -1    // in the breaker's lease list
        var next: Int32 = -1        // in the lease list, or the free list
        var owner: Int32 = -1       // in `PermitOwners`, or -1
        var ownerPrevious: Int32 = -1
        var ownerNext: Int32 = -1
    }

    static let capacity = Int(PermitID.slotMask) + 1

    private(set) var slots: [Slot] = []
    private var freeHead: Int32 = -1
    private var random = SecureRandomPool()
    private(set) var inFlight = 0

    // Yielded in place: reading one field of a slot must not copy the whole slot.
    subscript(slot: Int32) -> Slot {
        _read { yield slots[Int(slot)] }
        _modify { yield &slots[Int(slot)] }
    }

    /// The slot holding `id`, if that permit is still outstanding.
    func find(_ id: PermitID) -> Int32? {
        let slot = id.slot
        guard slot < slots.count, slots[slot].id == id.rawValue else { return nil }
        return Int32(slot)
    }

    /// Takes a free slot and stamps a fresh, unpredictable id on it; `nil` when all
    /// `capacity` slots are in use.
    mutating func allocate() -> (Int32, PermitID)? {
        let slot: Int32
        if freeHead >= 0 {
            slot = freeHead
            freeHead = slots[Int(slot)].next
        } else {
            guard slots.count < Self.capacity else { return nil }
            slots.append(Slot())
            slot = Int32(slots.count - 1)
        }
        var tag: UInt64 = 0
        while tag == 0 { tag = random.next() >> PermitID.slotBits }
        let id = PermitID(rawValue: (tag << PermitID.slotBits) | UInt64(slot))
        slots[Int(slot)].id = id.rawValue
        inFlight += 1
        return (slot, id)
    }

    mutating func free(_ slot: Int32) {
        slots[Int(slot)] = Slot(next: freeHead)
        freeHead = slot
        inFlight -= 1
    }
}

extension PermitSlab.Slot {
    init(next: Int32) {
        self.init()
        self.next = next
    }
}
