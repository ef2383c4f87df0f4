import FuseboxCore
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a YAML configuration into a validated `Configuration`.
public enum ConfigLoader {
    static let topLevelKeys = [
        "socket", "admin_socket", "socket_mode", "max_connections", "max_admin_connections", "max_permits_per_connection",
        "idle_timeout", "shutdown_timeout", "watch_config", "redact_errors", "fast_path", "allowed_uids", "http", "http_max_connections",
        "http_header_timeout", "http_idle_timeout", "http_json", "store", "retention", "instance", "log", "log_level", "defaults", "breakers",
        "chains", "fleet", "otlp",
    ]

    /// The embedded default.
    public static func loadDefault() throws(ConfigError) -> Configuration {
        try load(yaml: DefaultConfiguration.yaml, file: DefaultConfiguration.sourceName)
    }

    /// The file at `path`, or the embedded default when `path` is nil.
    public static func load(path: String?) throws(ConfigError) -> Configuration {
        guard let path else { return try loadDefault() }
        return try load(yaml: readText(path), file: path)
    }

    /// The document's root node, or nil for an empty document.
    package static func root(yaml: String, file: String) throws(ConfigError) -> ConfigNode? {
        do {
            return try Yams.compose(yaml: yaml).map { ConfigNode(node: $0, path: "", file: file) }
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        } catch {
            throw ConfigError(file: file, line: nil, column: nil, key: "", message: "not valid YAML: \(error)")
        }
    }

    /// A configuration file's text. Only a regular file of at most 16 MiB
    /// with something in it: a directory, FIFO or device is refused at once
    /// (opened without blocking, so a FIFO cannot hang start, reload or
    /// `check`), and an empty file is refused rather than read as "all
    /// defaults" (a truncated file at reload must not replace every breaker).
    package static func readText(_ path: String) throws(ConfigError) -> String {
        func refuse(_ message: String) -> ConfigError { ConfigError(file: path, line: nil, column: nil, key: "", message: message) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw refuse("cannot open the file: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw refuse("cannot read the file: \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw refuse("is \(fileKind(info.st_mode)), not a regular file; give the path of a YAML file")
        }
        guard info.st_size <= maxFileBytes else { throw refuse("is larger than 16 MiB; a configuration is a small YAML file") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw refuse("cannot read the file: \(errnoText())") }
            if got == 0 { break }
            count += got
            if count == bytes.count, count <= maxFileBytes { bytes += [UInt8](repeating: 0, count: 65_536) }
            guard count <= maxFileBytes else { throw refuse("is larger than 16 MiB; a configuration is a small YAML file") }
        }
        let text = String(decoding: bytes[0..<count], as: UTF8.self)
        let meaningful = text.split(separator: "\n").contains { line in
            let trimmed = line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            return !trimmed.isEmpty && !trimmed.hasPrefix("#") && trimmed != "---" && trimmed != "..."
        }
        guard meaningful else {
            throw refuse("is empty; write at least one key (`fusebox check` prints the default in full), or start without --config for the embedded default")
        }
        return text
    }

    static let maxFileBytes = 16 << 20

    private static func fileKind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    public static func load(yaml: String, file: String) throws(ConfigError) -> Configuration {
        let rootNode = try root(yaml: yaml, file: file)
        var config = Configuration(engine: EngineConfiguration(breakers: []))
        var entries: [(key: String, value: ConfigNode)] = []
        if let rootNode { entries = try rootNode.mapping(allowed: topLevelKeys) }
        let byKey = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })

        for (key, value) in entries { try applyTopLevel(key, value, to: &config) }
        if let defaults = byKey["defaults"] { try PolicyReader.apply(defaults, to: &config.defaults) }

        // Without a breakers section the default's breakers and chains stand,
        // on this file's defaults.
        var breakers = byKey["breakers"]
        var chains = byKey["chains"]
        if breakers == nil, file != DefaultConfiguration.sourceName {
            let sections = try defaultSections()
            breakers = sections.breakers
            if chains == nil { chains = sections.chains }
        }
        if let breakers { config.engine.breakers = try breakerDefinitions(breakers, defaults: config.defaults) }
        if let chains { config.engine.chains = try chainDefinitions(chains, breakers: config.engine.breakers.map(\.name)) }
        try FleetReader.checkScopes(config, fleetNode: byKey["fleet"], breakersNode: breakers)
        if let adminSocket = config.adminSocket, adminSocket == config.socket {
            throw (byKey["admin_socket"] ?? byKey["socket"])!.error("the admin socket must differ from the socket")
        }
        return config
    }

    /// One top-level setting from the file (or from a flag or variable that overrides it).
    package static func applyTopLevel(_ key: String, _ value: ConfigNode, to config: inout Configuration) throws(ConfigError) {
        switch key {
        case "socket": config.socket = try path(value)
        case "admin_socket": config.adminSocket = value.isOff ? nil : try path(value)
        case "socket_mode": config.socketMode = try socketMode(value)
        case "max_connections": config.maxConnections = try value.int(1...1_000_000)
        case "max_admin_connections": config.maxAdminConnections = try value.int(1...1_000)
        case "max_permits_per_connection": config.maxPermitsPerConnection = try value.int(1...1_000_000)
        case "idle_timeout": config.idleTimeout = value.isOff ? nil : try value.duration()
        case "shutdown_timeout": config.shutdownTimeout = try value.duration(maximum: .seconds(600))
        case "watch_config":
            config.watchConfig = value.isOff ? nil : try value.duration(maximum: .seconds(3_600))
            if let interval = config.watchConfig, interval < .milliseconds(100) { throw value.error("expected at least 100ms between looks, or off") }
        case "redact_errors": config.redactErrors = try value.bool()
        case "fast_path": config.fastPath = try value.bool()
        case "http_max_connections": config.httpMaxConnections = try value.int(1...100_000)
        case "http_header_timeout": config.httpHeaderTimeout = try value.duration(maximum: .seconds(600))
        case "http_idle_timeout": config.httpIdleTimeout = try value.duration(maximum: .seconds(3_600))
        case "http_json": config.httpJSON = try value.bool()
        case "allowed_uids":
            config.allowedUIDs = value.isOff ? nil : try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> UInt32 in
                UInt32(try item.int(0...Int(Int32.max)))
            }
        case "http": config.http = value.isOff ? nil : try endpoint(value)
        case "store": config.store = value.isOff ? nil : try path(value)
        case "retention": config.retention = value.isOff ? nil : try value.duration(maximum: DurationText.maximumRetention)
        case "instance": config.instance = try name(value, what: "an instance name")
        case "log": config.log = try log(value)
        case "log_level":
            let text = try value.string()
            guard let level = LogLevel(rawValue: text) else {
                throw value.error("must be one of \(LogLevel.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(text.prefix(20))\"")
            }
            config.logLevel = level
        case "fleet": config.fleet = value.isOff ? nil : try FleetReader.settings(value)
        case "otlp": config.otlp = value.isOff ? nil : try OTLPReader.settings(value)
        default: break
        }
    }

    // MARK: Sections

    private static func defaultSections() throws(ConfigError) -> (breakers: ConfigNode?, chains: ConfigNode?) {
        let file = DefaultConfiguration.sourceName
        guard let root = try? Yams.compose(yaml: DefaultConfiguration.yaml) else { return (nil, nil) }
        let entries = try ConfigNode(node: root, path: "", file: file).mapping()
        return (entries.first { $0.key == "breakers" }?.value, entries.first { $0.key == "chains" }?.value)
    }

    private static func breakerDefinitions(_ node: ConfigNode, defaults: BreakerPolicy) throws(ConfigError) -> [BreakerDefinition] {
        var definitions: [BreakerDefinition] = []
        for (name, section) in try node.mapping() {
            try checkName(name, at: section, what: "A breaker name")
            var policy = defaults
            try PolicyReader.apply(section, to: &policy, extra: ["models"])
            definitions.append(BreakerDefinition(name: name, policy: policy))
            if section.isMapping, let models = try section.mapping().first(where: { $0.key == "models" })?.value {
                definitions += try modelDefinitions(models, provider: name, policy: policy)
            }
        }
        return definitions
    }

    /// Per-model breakers: `models: [gpt-4o, o3]` adds `openai/gpt-4o` and
    /// `openai/o3` with the provider's policy; the mapping form
    /// (`models: { gpt-4o: { open: { duration: 10s } } }`) changes it per model.
    /// Listed, not made on first sight: a model name in a request body is the
    /// app's (or anyone's) word, and breakers made from it would be unbounded.
    private static func modelDefinitions(_ node: ConfigNode, provider: String, policy: BreakerPolicy) throws(ConfigError) -> [BreakerDefinition] {
        var models: [(name: String, node: ConfigNode, section: ConfigNode?)] = []
        if node.isMapping {
            models = try node.mapping().map { ($0.key, $0.value, $0.value) }
        } else {
            models = try node.sequence().map { (item: ConfigNode) throws(ConfigError) in (try item.string(), item, nil) }
        }
        guard !models.isEmpty else { throw node.error("models needs at least one model name") }
        var seen = Set<String>()
        var definitions: [BreakerDefinition] = []
        for model in models {
            let allowed = model.name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x5F || byte == 0x2E || byte == 0x3A
            }
            let name = provider + "/" + model.name
            guard allowed, !model.name.isEmpty, name.utf8.count <= 64 else {
                throw model.node.error("A model name must be letters, digits, '-', '_', '.' or ':', and \"\(provider)/<model>\" at most 64 bytes")
            }
            guard seen.insert(model.name).inserted else { throw model.node.error("names model \"\(model.name)\" twice") }
            var modelPolicy = policy
            if let section = model.section, !section.isNull { try PolicyReader.apply(section, to: &modelPolicy) }
            definitions.append(BreakerDefinition(name: name, policy: modelPolicy))
        }
        return definitions
    }

    /// A chain is a list of breakers (tried in order) or a mapping with
    /// `breakers`, `strategy` and the strategy's settings.
    private static func chainDefinitions(_ node: ConfigNode, breakers: [String]) throws(ConfigError) -> [ChainDefinition] {
        var chains: [ChainDefinition] = []
        for (name, section) in try node.mapping() {
            try checkName(name, at: section, what: "A chain name")
            guard section.isMapping else {
                chains.append(ChainDefinition(name: name, breakers: try chainMembers(section, breakers: breakers)))
                continue
            }
            chains.append(try ChainReader.chain(name, section, members: { list throws(ConfigError) in
                try chainMembers(list, breakers: breakers)
            }))
        }
        return chains
    }

    static func chainMembers(_ list: ConfigNode, breakers: [String]) throws(ConfigError) -> [String] {
        let members = try list.sequence()
        guard !members.isEmpty else { throw list.error("a chain needs at least one breaker") }
        let known = Set(breakers)
        var names: [String] = []
        var seen = Set<String>()
        for member in members {
            let breaker = try member.string()
            guard known.contains(breaker) else {
                let known = breakers.isEmpty ? "none are defined" : "defined breakers: \(breakers.joined(separator: ", "))"
                throw member.error("names breaker \"\(breaker)\", which is not defined; \(known)")
            }
            guard seen.insert(breaker).inserted else { throw member.error("names breaker \"\(breaker)\" twice") }
            names.append(breaker)
        }
        return names
    }

    // MARK: Scalars

    /// Breaker and chain names become metric labels and log fields: keep them plain.
    static func checkName(_ name: String, at node: ConfigNode, what: String) throws(ConfigError) {
        let allowed = name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
        guard allowed, (1...64).contains(name.utf8.count) else {
            throw node.error("\(what) must be 1 to 64 letters, digits, '-', '_' or '.'")
        }
    }

    private static func name(_ node: ConfigNode, what: String) throws(ConfigError) -> String {
        let text = try node.string()
        guard !text.isEmpty, text.utf8.count <= 255, !text.contains(where: { $0.isNewline }) else {
            throw node.error("expected \(what): one line of at most 255 bytes")
        }
        return text
    }

    private static func path(_ node: ConfigNode) throws(ConfigError) -> String {
        let text = try node.string()
        guard !text.isEmpty, !text.contains("\0") else { throw node.error("expected a file path") }
        return text
    }

    private static func socketMode(_ node: ConfigNode) throws(ConfigError) -> UInt32 {
        // Read the digits as written: YAML 1.1 would read 0600 as octal, 1.2 as decimal.
        let text = try node.string()
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard let mode = UInt32(digits, radix: 8), mode <= 0o777, mode & 0o600 == 0o600 else {
            throw node.error("expected octal permission bits that keep the owner's read and write, such as \"0600\" or \"0660\"; got \"\(text)\"")
        }
        return mode
    }

    private static func endpoint(_ node: ConfigNode) throws(ConfigError) -> HTTPEndpoint {
        let text = try node.string()
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[close...].dropFirst(2)
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            throw node.error("expected host:port such as 127.0.0.1:9464, or off; got \"\(text)\"")
        }
        guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else {
            throw node.error("expected host:port such as 127.0.0.1:9464 (port 0 to 65535), or off; got \"\(text)\"")
        }
        // A host name or IPv4 address (letters, digits, '-', '.'), or an IPv6 address in brackets.
        let bracketed = text.hasPrefix("[")
        let allowed = host.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "."
                || (bracketed && scalar == ":"))
        }
        guard allowed, host.utf8.count <= 253 else {
            throw node.error("expected a host name or IP address before the port (IPv6 in brackets: [::1]:9464); got \"\(text)\"")
        }
        return HTTPEndpoint(host: String(host), port: port)
    }

    private static func log(_ node: ConfigNode) throws(ConfigError) -> LogDestination {
        switch try path(node) {
        case "stdout": return .stdout
        case "stderr": return .stderr
        case let file: return .file(file)
        }
    }

    // MARK: Errors

    private static func syntaxError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let what = context.map { "\($0.text) \(problem)" } ?? problem
            return ConfigError(file: file, line: mark.line, column: mark.column, key: "", message: "not valid YAML: \(what)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                file: file, line: context.mark.line, column: context.mark.column, key: duplicates.joined(separator: ", "),
                message: "given twice in one mapping"
            )
        default:
            return ConfigError(file: file, line: nil, column: nil, key: "", message: "not valid YAML: \(error)")
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
