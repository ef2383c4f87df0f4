/// Who ends a breaker's open period once it has run out. Exactly one party
/// does, so a recovering provider sees one probe, not one per caller.
enum ProbeAuthority: Equatable, Sendable {
    /// The next user's call turns the breaker half-open and is the probe (gobreaker's way).
    case users
    /// The sidecar's own prober (`probe: mode: active`): it goes half-open and
    /// sends the probe; users are refused until its verdict.
    case prober(ProbePolicy)
    /// Fleet mode: only the sidecar granted the fleet's probe lease goes
    /// half-open; the others wait for the result it publishes.
    case fleetLease
}
