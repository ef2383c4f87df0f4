import ArgumentParser
import FuseboxConfig
import FuseboxFleet

#if canImport(Glibc)
import Glibc
#endif

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Set up fleet mode's PostgreSQL: the tables, and least-privilege grants for the sidecars' role.",
        discussion: """
        Examples:
          fusebox fleet init --print-sql --role fleet_member        the SQL, to read or pipe into psql as the owner
          fusebox fleet init --postgres postgresql://owner@db/fusebox --role fleet_member
        """,
        subcommands: [Init.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create (or migrate) the fleet's tables as their owner, and grant a role what sidecars use.",
            discussion: "The sidecars then connect as that role: no DDL, only the statements they run (docs/fleet.md, \"Least privilege\")."
        )
        @Option(help: "The owner's postgresql:// URL (default: FUSEBOX_FLEET_POSTGRES).") var postgres: String?
        @Option(help: "The role the sidecars connect as; it gets only what they use.") var role: String?
        @Flag(help: "Print the SQL instead of running it.") var printSql = false

        func run() throws {
            if printSql {
                do {
                    print(try FleetGrants.script(role: role))
                } catch {
                    throw ValidationError("\(error)")
                }
                return
            }
            let text = postgres ?? getenv(FleetSettings.postgresVariable).map { String(cString: $0) }
            guard let text, !text.isEmpty else {
                throw ValidationError("give --postgres URL (the tables' owner), set \(FleetSettings.postgresVariable), or use --print-sql")
            }
            let url: PostgresURL
            do { url = try PostgresURL(parsing: text) } catch { throw ValidationError("--postgres: \(error.description)") }
            let role = self.role
            switch BlockingTask.run({ try await FleetGrants.initialize(url, role: role) }) {
            case .success:
                print("fleet tables ready in \(url)" + (role.map { "; \($0) granted what sidecars use" } ?? ""))
            case .failure(let error):
                printError("fusebox fleet init: \(error)")
                throw ExitCode(ExitStatus.unavailable)
            }
        }
    }
}
