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
