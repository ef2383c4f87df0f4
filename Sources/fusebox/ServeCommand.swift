import FuseboxApp
import ArgumentParser
import FuseboxServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sidecar: breakers served over a Unix socket.",
        discussion: """
        Listens on the configured Unix socket (./fusebox.sock by default) and the admin socket \
        (./fusebox-admin.sock), speaking newline-delimited JSON (docs/protocol.md). Without \
        --config it runs the embedded default: breakers openai, anthropic and ollama, chain llm. \
        SIGTERM or SIGINT stops it cleanly; SIGHUP reloads the configuration file.

        Examples:
          fusebox serve
          fusebox serve --config /etc/fusebox/fusebox.yaml --log-format text
          printf '{"op":"acquire","breaker":"openai"}\\n' | socat - UNIX-CONNECT:./fusebox.sock
        """
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file. Without it, the embedded default.")
    var config: String?

    @Option(help: "Log lines as json (one object per line) or text (for people).")
    var logFormat: Sidecar.LogFormat = .json

    func run() async throws {
        do {
            try await Sidecar.run(configPath: config, logFormat: logFormat, version: FuseboxVersion.current)
        } catch let error as Sidecar.StartError {
            printError("fusebox serve: \(error)")
            throw ExitCode(1)
        }
    }
}

extension Sidecar.LogFormat: ExpressibleByArgument {}
