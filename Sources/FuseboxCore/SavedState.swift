/// What a breaker was doing when the sidecar last stopped, as the store
/// recorded it: read back at start so a restart does not forget an outage
/// and send a burst of calls to a provider that is still down.
public struct SavedState: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Open (or half-open, its probe lost with the process) until `until`:
        /// an end already past makes the first call after the start the probe.
        case open(until: Timestamp)
        /// An operator's force, which no timer ends.
        case forced(ForcedMode)
    }

    public var mode: Mode?
    /// The generation of the last transition recorded: the restored one continues from it.
    public var generation: UInt64
    /// A 429's Retry-After pause of the breaker's budgets, when still running.
    public var pausedUntil: Timestamp?

    public init(mode: Mode?, generation: UInt64, pausedUntil: Timestamp? = nil) {
        self.mode = mode
        self.generation = generation
        self.pausedUntil = pausedUntil
    }
}
