import FuseboxApp
import ArgumentParser
import FuseboxConfig
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

        The environment variables FUSEBOX_CONFIG, FUSEBOX_SOCKET, FUSEBOX_ADMIN_SOCKET, \
        FUSEBOX_HTTP and FUSEBOX_STORE set the same things as the flags. Precedence: \
        flag > environment > file > default (`fusebox check` says where each value came from). \
        Under systemd (NOTIFY_SOCKET set) it reports READY=1 once its sockets are bound, and \
        STOPPING=1 when it starts to stop.

        Examples:
          fusebox serve
          fusebox serve --config /etc/fusebox/fusebox.yaml --log-format text
          fusebox serve --socket /run/fusebox/fusebox.sock --http 0.0.0.0:9464 --store off
          printf '{"op":"acquire","breaker":"openai"}\\n' | socat - UNIX-CONNECT:./fusebox.sock
        """
    )

    @Option(name: .shortAndLong, help: "The YAML configuration file (or $FUSEBOX_CONFIG). Without either, the embedded default.")
    var config: String?

    @OptionGroup var places: Places

    @Option(help: "Log lines as json (one object per line) or text (for people).")
    var logFormat: Sidecar.LogFormat = .json

    func run() async throws {
        do {
            try await Sidecar.run(source: places.source(config: config), logFormat: logFormat, version: FuseboxVersion.current)
        } catch let error as Sidecar.StartError {
            printError("fusebox serve: \(error)")
            throw ExitCode(error.isConfiguration ? ExitStatus.configuration : ExitStatus.cannotStart)
        }
    }
}

/// The paths and addresses a deployment sets, as flags of `serve` and `check`.
struct Places: ParsableArguments {
    @Option(help: "The main socket's path (or $FUSEBOX_SOCKET); overrides the file's socket.")
    var socket: String?

    @Option(help: "The admin socket's path, or off (or $FUSEBOX_ADMIN_SOCKET).")
    var adminSocket: String?

    @Option(help: "HTTP host:port for metrics and health, or off (or $FUSEBOX_HTTP).")
    var http: String?

    @Option(help: "The incident store's path, or off (or $FUSEBOX_STORE).")
    var store: String?

    func source(config: String?) -> ConfigSource {
        var flags: [String: String] = [:]
        flags["socket"] = socket
        flags["admin_socket"] = adminSocket
        flags["http"] = http
        flags["store"] = store
        return ConfigSource(configFlag: config, flags: flags, environment: ConfigSource.processEnvironment())
    }
}

extension Sidecar.LogFormat: ExpressibleByArgument {}
