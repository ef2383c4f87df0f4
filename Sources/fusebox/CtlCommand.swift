import ArgumentParser
import FuseboxConfig
import FuseboxCore
import FuseboxWire
import FuseboxJSON
import FuseboxSocket

struct CtlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Talk to a running sidecar: status, watch, call, force, reset.",
        discussion: """
        Examples:
          fusebox ctl status                   every breaker as a table
          fusebox ctl status openai --json     one breaker, as the protocol returns it
          fusebox ctl watch                    print transitions as they happen (Ctrl-C to stop)
          fusebox ctl call openai --status 503 one call's cycle by hand: acquire, then report
          fusebox ctl force openai open --reason "provider incident"
          fusebox ctl force openai auto        hand it back to the state machine
          fusebox ctl reset openai
        """,
        subcommands: [Status.self, Watch.self, Call.self, Force.self, Reset.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "The sidecar's socket (default: $FUSEBOX_SOCKET, else from the configuration, else ./fusebox.sock).")
        var socket: String?

        @Option(help: "The admin socket, for force and reset (default: $FUSEBOX_ADMIN_SOCKET, else from the configuration).")
        var adminSocket: String?

        @Option(name: .shortAndLong, help: "Read the socket paths from this configuration file (default: $FUSEBOX_CONFIG).")
        var config: String?

        /// Flag > environment > configuration file > default, as for `serve`; the file is read only when needed.
        func path(admin: Bool) throws -> String {
            let key = admin ? "admin_socket" : "socket"
            var flags: [String: String] = [:]
            flags["socket"] = socket
            flags["admin_socket"] = adminSocket
            let source = ConfigSource(configFlag: config, flags: flags, environment: ConfigSource.processEnvironment())
            if let override = source.overrides[key], override.text != "off" { return override.text }
            let loaded: Configuration
            do { loaded = try source.load() } catch {
                printError("fusebox ctl: \(error)")
                throw ExitCode(ExitStatus.configuration)
            }
            if admin {
                guard let path = loaded.adminSocket else {
                    printError("fusebox ctl: the configuration has admin_socket: off; force and reset need the admin socket")
                    throw ExitCode(ExitStatus.notConfigured)
                }
                return path
            }
            return loaded.socket
        }

        func connect(admin: Bool) throws -> LineClient {
            do {
                return try LineClient(path: path(admin: admin))
            } catch let failure as LineClient.Failure {
                printError("fusebox ctl: \(failure)")
                throw ExitCode(ExitStatus.unavailable)
            }
        }
    }

    /// Sends one request; prints the error and exits with its status when the answer is not ok.
    static func ask(_ client: LineClient, _ request: String) throws -> JSONValue {
        let answer: JSONValue
        do { answer = try client.request(request) } catch {
            printError("fusebox ctl: \(error)")
            throw ExitCode(ExitStatus.unavailable)
        }
        guard answer["ok"] == .bool(true) else {
            if case .string(let code)? = answer["error"]?["code"], case .string(let message)? = answer["error"]?["message"] {
                printError("fusebox ctl: \(code): \(message)")
                if code == "unknown_breaker" || code == "unknown_chain" { throw ExitCode(ExitStatus.unknownName) }
            } else {
                printError("fusebox ctl: unexpected answer")
            }
            throw ExitCode(ExitStatus.refused)
        }
        return answer
    }

    static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.appendString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show breakers as a table (or --json).")

        @OptionGroup var connection: Connection
        @Argument(help: "One breaker; all when omitted.") var breaker: String?
        @Flag(help: "Print the protocol's JSON answer.") var json = false

        func run() throws {
            let client = try connection.connect(admin: false)
            let request = breaker.map { #"{"op":"status","breaker":\#(quoted($0))}"# } ?? #"{"op":"status"}"#
            let answer = try ask(client, request)
            if json {
                print(JSONWriter.text(answer))
                return
            }
            guard case .array(let breakers)? = answer["breakers"] else { return }
            print(StatusTable.render(breakers))
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every transition as it happens.")

        @OptionGroup var connection: Connection
        @Flag(help: "Print each event's JSON line as received.") var json = false

        func run() throws {
            let client = try connection.connect(admin: false)
            _ = try ask(client, #"{"op":"subscribe","events":["transition"]}"#)
            client.setTimeout(nil)
            printError("watching transitions; Ctrl-C to stop")
            while let line = try? client.readLine() {
                if json {
                    print(line)
                } else if let event = try? JSONParser.parse(line) {
                    print(StatusTable.describe(event))
                }
                fflushStandardOutput()
            }
        }
    }

    struct Force: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Force a breaker open, closed, disabled, metrics_only, or back to auto.")

        @OptionGroup var connection: Connection
        @Argument(help: "The breaker.") var breaker: String
        @Argument(help: "open, closed, disabled, metrics_only or auto.") var state: String
        @Option(help: "Why (logged).") var reason: String?
        @Flag(help: "In fleet mode, on this sidecar only (by default a shared breaker is forced on every peer).") var local = false
        @Flag(help: "Print the protocol's JSON answer.") var json = false

        func run() throws {
            guard ForcedMode(rawValue: state) != nil else {
                throw ValidationError("state must be one of \(ForcedMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let client = try connection.connect(admin: true)
            var request = #"{"op":"force","breaker":\#(quoted(breaker)),"state":\#(quoted(state))"#
            if let reason { request += #","reason":\#(quoted(reason))"# }
            if local { request += #","local":true"# }
            let answer = try ask(client, request + "}")
            if json {
                print(JSONWriter.text(answer))
            } else if case .string(let now)? = answer["state"] {
                print("\(breaker): \(now)")
            }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a breaker and forget its statistics and backoff.")

        @OptionGroup var connection: Connection
        @Argument(help: "The breaker.") var breaker: String
        @Flag(help: "In fleet mode, on this sidecar only (by default a shared breaker is reset on every peer).") var local = false
        @Flag(help: "Print the protocol's JSON answer.") var json = false

        func run() throws {
            let client = try connection.connect(admin: true)
            let answer = try ask(client, #"{"op":"reset","breaker":\#(quoted(breaker))\#(local ? #","local":true"# : "")}"#)
            if json {
                print(JSONWriter.text(answer))
            } else if case .string(let now)? = answer["state"] {
                print("\(breaker): \(now)")
            }
        }
    }
}
