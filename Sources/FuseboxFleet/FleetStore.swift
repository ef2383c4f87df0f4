/// What fleet mode asks of the database its sidecars share: one call per
/// statement, bound to one fleet and one member. `PostgresFleetStore` runs
/// them on the fleet's connection. The fleet's rules (what a peer's message
/// may change, when to claim, renew or hand back a lease, which failures to
/// tell, how a skewed clock is read) stay in `FleetOpenings` and
/// `BudgetLeases`, so they are tested against an in-memory store and a
/// manual clock, and the PostgreSQL tests prove the statements.
///
/// Every time a store keeps for other hosts is in the database's clock.
protocol FleetStore: Sendable {
    /// The database's clock now, in Unix ms.
    func databaseNow() async throws -> Int64

    /// Sends `payload` to every sidecar listening on the fleet's channel (NOTIFY).
    func notify(_ payload: String) async throws

    /// Stores a breaker's state for the fleet: the epoch one past the stored
    /// one (1 for a new row), an opening's end `remaining` ms from the
    /// database's now, and this member as its origin. The row as stored.
    func publish(_ state: StateWrite) async throws -> StoredState?

    /// The fleet's rows, each opening's end also read back as what remains of
    /// it from the database's now, bounded to ±10^15 ms whatever the row says.
    func states() async throws -> [PublishedState]

    /// Takes `breaker`'s probe lease for `epoch` when `ProbeLease.isFree`
    /// allows, for `term`. True when this member holds it afterwards.
    func claimProbe(breaker: String, epoch: Int64, term: Duration) async throws -> Bool

    /// Extends this member's lease of `epoch` to `term` from now; nothing if it lost it meanwhile.
    func renewProbe(breaker: String, epoch: Int64, term: Duration) async throws

    /// Hands back this member's lease of `epoch` at once.
    func releaseProbe(breaker: String, epoch: Int64) async throws

    /// One budget lease renewal, atomic per limit: leases past their term (or
    /// claiming more than two terms) are deleted, the others' demand and
    /// shares summed (values no sidecar could write count as none), `share`
    /// decides this member's part, and its lease is written for `term`.
    /// Returns the share and how many members hold a lease, this one included.
    func renewBudget(_ renewal: BudgetRenewal, share: @Sendable (OtherLeases) -> Double) async throws -> (share: Double, peers: Int)
}

/// A breaker state to store: `state` as the table spells it
/// (`open`, `closed`, `forced:<mode>`, `reset`).
struct StateWrite: Sendable, Equatable {
    var breaker: String
    var state: String
    var remaining: Int64?
    var probesFailed: Int
}

/// A row as stored: its epoch, an opening's end in the database's clock and
/// what remains of it, and when it was written.
struct StoredState: Sendable, Equatable {
    var epoch: Int64
    var openUntil: Int64?
    var remaining: Int64?
    var publishedAt: Int64
}

/// The probe lease's one rule, as `PostgresFleetStore`'s claim states it in SQL.
enum ProbeLease {
    /// A lease row lets `member` take it for `epoch` when it is for an older
    /// epoch, lapsed, already `member`'s (due again here, so its last probe is
    /// over), or claims more than two terms ahead: no sidecar writes that, so
    /// whoever did cannot hold the fleet's probe with it.
    static func isFree(heldBy holder: String, epoch heldEpoch: Int64, expires: Int64,
                       for member: String, epoch: Int64, now: Int64, term: Int64) -> Bool {
        heldEpoch < epoch || expires < now || holder == member || expires > now &+ term &* 2
    }
}

/// One member's budget lease renewal for one fleet-scoped limit.
struct BudgetRenewal: Sendable, Equatable {
    var breaker: String
    var kind: String
    var demand: Double
    var capacity: Double
    var term: Duration
}

/// What the other live leases of a limit hold.
struct OtherLeases: Sendable, Equatable {
    var demand = 0.0
    var share = 0.0
    var count = 0
}
