import ArgumentParser

@main
struct FuseboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusebox",
        abstract: "A circuit-breaker sidecar: apps ask it before calling a flaky provider and report how the call went.",
        discussion: """
        Examples:
          fusebox serve                          run the sidecar on the embedded default config
          fusebox ctl status                     show every breaker of a running sidecar
          fusebox check                          validate the embedded default and print it
          fusebox check --config fusebox.yaml    validate a file and print every breaker's effective policy
        """,
        version: FuseboxVersion.current,
        subcommands: [ServeCommand.self, CheckCommand.self, CtlCommand.self, AnalyzeCommand.self, SimulateCommand.self, StoreCommand.self, FleetCommand.self]
    )
}

enum FuseboxVersion {
    static let current = "0.1.0"
}
