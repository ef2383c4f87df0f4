#if canImport(Glibc)
import Glibc
#endif
import FuseboxCore

/// Reads a breaker's `probe:` section. Header values may name environment
/// variables (`Bearer ${OPENAI_API_KEY}`): they are resolved here, and only
/// the template is kept for anything shown or stored.
enum ProbeReader {
    static let methods = ["GET", "HEAD", "POST", "PUT", "OPTIONS"]

    static func probe(_ node: ConfigNode, current: ProbePolicy?) throws(ConfigError) -> ProbePolicy {
        var probe = current ?? ProbePolicy(url: "")
        var sawHTTP = current != nil
        for (key, value) in try node.mapping(allowed: ["http", "interval", "mode", "closed_interval"]) {
            switch key {
            case "http":
                try http(value, into: &probe)
                sawHTTP = true
            case "interval": probe.interval = value.isOff ? nil : try atLeast(.milliseconds(100), value.duration(), value)
            case "closed_interval": probe.closedInterval = value.isOff ? nil : try atLeast(.seconds(1), value.duration(), value)
            default:
                let text = try value.string()
                guard let mode = ProbeMode(rawValue: text) else {
                    throw value.error("must be active or passive, got \"\(text.prefix(40))\"")
                }
                probe.mode = mode
            }
        }
        guard sawHTTP, !probe.url.isEmpty else { throw node.error("needs http: { url: … }, the request that tests the provider") }
        return probe
    }

    private static func http(_ node: ConfigNode, into probe: inout ProbePolicy) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: ["url", "method", "headers", "body", "expect_status", "timeout"]) {
            switch key {
            case "url":
                let url = try value.string()
                let lower = url.lowercased()
                guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), url.count > 8, url.utf8.count <= 2_048,
                      !url.contains(where: { $0.isWhitespace })
                else { throw value.error("expected an http:// or https:// URL of at most 2048 bytes, got \"\(url.prefix(80))\"") }
                probe.url = url
            case "method":
                let method = try value.string().uppercased()
                guard methods.contains(method) else { throw value.error("must be one of \(methods.joined(separator: ", ")), got \"\(method.prefix(20))\"") }
                probe.method = method
            case "headers": probe.headers = try headers(value)
            case "body": probe.body = value.isNull ? nil : try value.string()
            case "expect_status":
                probe.expectStatus = try value.sequence().map { (item: ConfigNode) throws(ConfigError) -> StatusRule in
                    let rule = try PolicyReader.rule(item)
                    if rule == .timeout || rule == .connection { throw item.error("expect_status takes statuses or classes such as \"2xx\"") }
                    return rule
                }
            default:
                probe.timeout = try value.duration(maximum: .seconds(600))
                guard probe.timeout >= .milliseconds(1) else { throw value.error("a probe timeout is at least 1ms") }
            }
        }
    }

    private static func atLeast(_ least: Duration, _ value: Duration, _ node: ConfigNode) throws(ConfigError) -> Duration {
        guard value >= least else { throw node.error("expected at least \(DurationText.format(least)), or off") }
        return value
    }

    /// `name: template` pairs, each template's `${NAME}`s taken from the environment now.
    static func headers(_ node: ConfigNode) throws(ConfigError) -> [ProbeHeader] {
        var headers: [ProbeHeader] = []
        for (name, item) in try node.mapping() {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw item.error("a header name is printable ASCII without spaces or colons")
            }
            let template = try item.string()
            headers.append(ProbeHeader(name: name, template: template, value: try expand(template, at: item, header: name)))
        }
        return headers
    }

    /// `${NAME}` replaced by the variable's value. A variable that is not set
    /// is refused by name (never by value): sending "Bearer " would only fail later, silently.
    static func expand(_ template: String, at node: ConfigNode, header: String) throws(ConfigError) -> String {
        var result = ""
        var rest = Substring(template)
        while let start = rest.firstRange(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw node.error("header \(header): \"${\" without a closing \"}\"")
            }
            let name = String(rest[start.upperBound..<end])
            guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) else {
                throw node.error("header \(header): \"${\(name.prefix(40))}\" is not a variable name (letters, digits, _)")
            }
            guard let value = getenv(name) else {
                throw node.error("header \(header) uses ${\(name)}, which is not set in the environment")
            }
            result += String(cString: value)
            rest = rest[rest.index(after: end)...]
        }
        result += rest
        guard !result.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 }) else {
            throw node.error("header \(header): the value (after variables) holds a line break or NUL")
        }
        return result
    }
}
