import FuseboxCore

/// The fast path's state file, version 1: a header, then one fixed-size slot
/// per breaker in configured order. Little-endian (every platform Fusebox
/// runs on). docs/protocol.md ("The fast path") is the reference for client
/// authors; this is the same table in code.
///
/// Header (64 bytes): magic `FBXSTATE` · u32 version · u32 header size ·
/// u32 slot size · u32 slot count · u64 boot id (random, never 0; a new one
/// each start) · u64 heartbeat (Unix ms, rewritten every tick) · u32 pid ·
/// u32 stale-after ms (a heartbeat older than this means the sidecar is gone).
///
/// Slot (128 bytes): u32 sequence (odd while being written: a reader retries)
/// · u8 state · u8 flags (bit 0: admits locally) · u8 name length · u8 0 ·
/// u64 generation · 48 reserved · 64 bytes of name (UTF-8).
public enum StateFileLayout {
    public static let magic: [UInt8] = Array("FBXSTATE".utf8)
    public static let version: UInt32 = 1
    public static let headerBytes = 64
    public static let slotBytes = 128
    public static let nameBytes = 64

    // Header offsets.
    public static let versionOffset = 8
    public static let headerSizeOffset = 12
    public static let slotSizeOffset = 16
    public static let slotCountOffset = 20
    public static let bootOffset = 24
    public static let heartbeatOffset = 32
    public static let pidOffset = 40
    public static let staleAfterOffset = 44

    // Slot offsets.
    public static let sequenceOffset = 0
    public static let stateOffset = 4
    public static let flagsOffset = 5
    public static let nameLengthOffset = 6
    public static let generationOffset = 8
    public static let nameOffset = 64

    public static let admitsLocallyFlag: UInt8 = 1

    /// State codes; 0 is an empty slot.
    public static func code(of state: BreakerState) -> UInt8 {
        switch state {
        case .closed: return 1
        case .open: return 2
        case .halfOpen: return 3
        case .forcedOpen: return 4
        case .disabled: return 5
        case .metricsOnly: return 6
        }
    }

    public static func bytes(slots: Int) -> Int { headerBytes + slots * slotBytes }
}

/// A state file as read back from its bytes, checked as a client checks it:
/// the magic, the version, sizes that fit the bytes, and each slot whole (its
/// sequence even). The sidecar's own sweep, the tests and the fuzzer read
/// files through it; anything malformed reads as nil, never a trap.
public struct StateFileContents: Equatable, Sendable {
    public struct Slot: Equatable, Sendable {
        public var index: Int
        public var state: UInt8
        public var flags: UInt8
        public var generation: UInt64
        public var name: String
    }

    public var slotCount: Int
    public var bootID: UInt64
    public var heartbeat: UInt64
    public var pid: UInt32
    public var staleAfterMs: UInt32
    /// Occupied slots (state not 0) that were whole when read.
    public var slots: [Slot]

    /// Reads a header and as many slots as `bytes` holds; nil when the header is not a state file's.
    /// `headerOnly` stops after the header (the sweep needs no more).
    public init?(_ bytes: some Collection<UInt8>, headerOnly: Bool = false) {
        let bytes = Array(bytes)
        guard bytes.count >= StateFileLayout.headerBytes, Array(bytes[0..<8]) == StateFileLayout.magic else { return nil }
        func field(_ offset: Int, _ size: Int) -> UInt64 {
            bytes[offset..<(offset + size)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        guard field(StateFileLayout.versionOffset, 4) == UInt64(StateFileLayout.version) else { return nil }
        let headerSize = Int(field(StateFileLayout.headerSizeOffset, 4))
        let slotSize = Int(field(StateFileLayout.slotSizeOffset, 4))
        let count = Int(field(StateFileLayout.slotCountOffset, 4))
        bootID = field(StateFileLayout.bootOffset, 8)
        heartbeat = field(StateFileLayout.heartbeatOffset, 8)
        pid = UInt32(field(StateFileLayout.pidOffset, 4))
        staleAfterMs = UInt32(field(StateFileLayout.staleAfterOffset, 4))
        slotCount = count
        slots = []
        if headerOnly { return }
        // Sizes are the file's word: they must describe a file that fits in what was read.
        let (slotsBytes, overflow) = count.multipliedReportingOverflow(by: slotSize)
        guard headerSize >= StateFileLayout.headerBytes, slotSize >= StateFileLayout.slotBytes, !overflow,
              headerSize <= bytes.count, slotsBytes <= bytes.count - headerSize
        else { return nil }
        for index in 0..<count {
            let at = headerSize + index * slotSize
            let sequence = field(at + StateFileLayout.sequenceOffset, 4)
            let state = bytes[at + StateFileLayout.stateOffset]
            guard sequence & 1 == 0, state != 0 else { continue }
            let length = min(Int(bytes[at + StateFileLayout.nameLengthOffset]), StateFileLayout.nameBytes)
            let name = String(decoding: bytes[(at + StateFileLayout.nameOffset)..<(at + StateFileLayout.nameOffset + length)], as: UTF8.self)
            slots.append(Slot(
                index: index, state: state, flags: bytes[at + StateFileLayout.flagsOffset],
                generation: field(at + StateFileLayout.generationOffset, 8), name: name
            ))
        }
    }
}
