/// The `fleet:` section: sidecars with the same `name` share openings,
/// fleet-scoped budgets and one incident history through PostgreSQL.
public struct FleetSettings: Sendable, Equatable {
    public var postgres: PostgresURL
    /// What every message to peers is signed with.
    public var secret: FleetSecret
    public var name: String = "default"
    /// How often a fleet budget's lease is renewed (and shares follow demand).
    public var refresh: Duration = .seconds(1)
    /// How long a lease holds without renewal; then a sidecar falls back to a safe share.
    public var lease: Duration = .seconds(10)
    /// How often the shipper copies new store rows to PostgreSQL.
    public var shipInterval: Duration = .seconds(2)
    /// PostgreSQL history older than this is pruned; nil keeps it all.
    public var retention: Duration? = .seconds(90 * 86_400)
    /// A sidecar that has never seen its fleet takes capacity ÷ this for a fleet budget.
    public var assumedPeers: Int = 4

    public init(postgres: PostgresURL, secret: FleetSecret) {
        self.postgres = postgres
        self.secret = secret
    }

    /// The environment variable that overrides `fleet.postgres` (keeps a password out of the file).
    public static let postgresVariable = "FUSEBOX_FLEET_POSTGRES"
}
