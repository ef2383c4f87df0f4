import ArgumentParser
import FuseboxConfig
import FuseboxCore

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration and print the effective policy of every breaker.",
        discussion: """
        Reads the YAML file (or, without --config, the embedded default), applies `defaults` to \
        every breaker, and prints the complete result as YAML. A problem is reported with the \
        file, line, column and key, and the command exits with status 1.

        Examples:
          fusebox check
          fusebox check --config /etc/fusebox/fusebox.yaml
          FUSEBOX_SOCKET=/run/fusebox/fusebox.sock fusebox check --store off
        """
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file (or $FUSEBOX_CONFIG). Without either, the embedded default.")
    var config: String?

    @OptionGroup var places: Places

    func run() throws {
        let configSource = places.source(config: config)
        let loaded: Configuration
        do {
            loaded = try configSource.load()
        } catch {
            printError("fusebox check: \(error)")
            throw ExitCode(ExitStatus.configuration)
        }
        let source = configSource.path ?? DefaultConfiguration.sourceName
        let breakers = loaded.engine.breakers.count
        let chains = loaded.engine.chains.count
        print("# \(source): OK, \(breakers) breaker\(breakers == 1 ? "" : "s"), \(chains) chain\(chains == 1 ? "" : "s")")
        for note in ConfigNotes.notes(for: loaded) { print("# note: \(note)") }
        print("# Where the deployment's settings came from (flag > environment > file > default):")
        for (key, value, origin) in configSource.origins(of: loaded) { print("#   \(key): \(value) (\(origin))") }
        print("# Effective configuration, every key spelled out:")
        print(ConfigRenderer.yaml(loaded), terminator: "")
    }
}
