import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Where an effective setting came from, highest precedence first.
public enum SettingOrigin: Sendable, Equatable, CustomStringConvertible {
    case flag(String)
    case environment(String)
    case file(String)
    case defaultValue

    public var description: String {
        switch self {
        case .flag(let name): return "flag \(name)"
        case .environment(let name): return "environment \(name)"
        case .file(let path): return "file \(path)"
        case .defaultValue: return "default"
        }
    }
}

/// What `serve` (and `check`, and `ctl`) read their configuration from: a
/// file, or the embedded default, with the paths and addresses an operator
/// sets per deployment taken from flags and the environment on top.
/// Precedence: flag > environment > file > default.
public struct ConfigSource: Sendable {
    /// One setting that flags and the environment may override.
    public struct Overridable: Sendable {
        public let key: String
        public let variable: String
        public let flag: String?
    }

    public static let overridable = [
        Overridable(key: "socket", variable: "FUSEBOX_SOCKET", flag: "--socket"),
        Overridable(key: "admin_socket", variable: "FUSEBOX_ADMIN_SOCKET", flag: "--admin-socket"),
        Overridable(key: "http", variable: "FUSEBOX_HTTP", flag: "--http"),
        Overridable(key: "store", variable: "FUSEBOX_STORE", flag: "--store"),
    ]
    public static let configVariable = "FUSEBOX_CONFIG"

    /// The configuration file, nil for the embedded default.
    public let path: String?
    public let pathOrigin: SettingOrigin
    /// Key → the text that replaces the file's value, and whence it came.
    public let overrides: [String: (text: String, origin: SettingOrigin)]

    /// `flags` maps a key of `overridable` to the flag's value, when given.
    public init(configFlag: String?, flags: [String: String], environment: [String: String]) {
        if let configFlag {
            (path, pathOrigin) = (configFlag, .flag("--config"))
        } else if let fromEnvironment = environment[Self.configVariable], !fromEnvironment.isEmpty {
            (path, pathOrigin) = (fromEnvironment, .environment(Self.configVariable))
        } else {
            (path, pathOrigin) = (nil, .defaultValue)
        }
        var overrides: [String: (text: String, origin: SettingOrigin)] = [:]
        for setting in Self.overridable {
            if let flag = setting.flag, let value = flags[setting.key] {
                overrides[setting.key] = (value, .flag(flag))
            } else if let value = environment[setting.variable], !value.isEmpty {
                overrides[setting.key] = (value, .environment(setting.variable))
            }
        }
        self.overrides = overrides
    }

    /// The embedded default with nothing overridden.
    public static let embedded = ConfigSource(configFlag: nil, flags: [:], environment: [:])

    /// The configuration with the overrides applied, each checked as the file's key would be.
    public func load() throws(ConfigError) -> Configuration {
        var configuration = try ConfigLoader.load(path: path)
        for (key, (text, origin)) in overrides {
            let node = ConfigNode(node: .scalar(.init(text)), path: key, file: "\(origin)")
            try ConfigLoader.applyTopLevel(key, node, to: &configuration)
        }
        if let adminSocket = configuration.adminSocket, adminSocket == configuration.socket {
            throw ConfigError(file: "\(pathOrigin)", line: nil, column: nil, key: "admin_socket", message: "the admin socket must differ from the socket (\(adminSocket))")
        }
        return configuration
    }

    /// Each overridable setting's effective value, and where it came from.
    public func origins(of configuration: Configuration) -> [(key: String, value: String, origin: SettingOrigin)] {
        let keysInFile = path.map(Self.topLevelKeys) ?? []
        let values = [
            "socket": configuration.socket, "admin_socket": configuration.adminSocket ?? "off",
            "http": configuration.http?.description ?? "off", "store": configuration.store ?? "off",
        ]
        return [("config", path ?? DefaultConfiguration.sourceName, pathOrigin)] + Self.overridable.map { setting in
            let value = values[setting.key] ?? ""
            if let override = overrides[setting.key] { return (setting.key, value, override.origin) }
            if let path, keysInFile.contains(setting.key) { return (setting.key, value, .file(path)) }
            return (setting.key, value, .defaultValue)
        }
    }

    /// The keys a configuration file writes at its top level (none if it no longer reads).
    static func topLevelKeys(_ path: String) -> Set<String> {
        guard let text = try? ConfigLoader.readText(path), let root = try? ConfigLoader.root(yaml: text, file: path),
              let entries = try? root.mapping() else { return [] }
        return Set(entries.map(\.key))
    }

    /// This process's environment.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        return result
    }
}
