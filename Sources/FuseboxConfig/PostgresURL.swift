/// Where a fleet's PostgreSQL is: `postgresql://user[:password]@host[:port]/database`,
/// or a Unix socket directory as `postgresql://user@/database?host=/run/postgresql`
/// (libpq's spelling). Parsed here so `fusebox check` can refuse a bad one.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var password: String?
    /// A host name or address; nil with `socketDirectory`.
    public var host: String?
    public var port: Int
    /// The directory holding `.s.PGSQL.<port>` (libpq's `host=/dir`).
    public var socketDirectory: String?
    public var database: String
    /// TLS, in libpq's words: `disable` (the default), `require` (encrypted;
    /// the server's certificate checked against `sslrootcert` only when one
    /// is given, as libpq does), `verify-ca` (signed by a trusted CA),
    /// `verify-full` (and issued for `host`). Trusted CAs: `sslrootcert`, else
    /// the system's. `sslcert` and `sslkey`: a client certificate, both or neither.
    public var sslMode: TLSMode = .disable
    public var sslRootCert: String?
    public var sslCert: String?
    public var sslKey: String?

    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The socket file for a `socketDirectory` URL.
    public var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

    /// The URL with the password masked, for logs, `check` and stored configurations.
    public var description: String {
        let credentials = percentEncoded(user) + (password == nil ? "" : ":***")
        let location = host.map { ($0.contains(":") ? "[\($0)]" : $0) + ":\(port)" } ?? ""
        var parameters = socketDirectory.map { ["host=\(percentEncoded($0))"] + (port == 5432 ? [] : ["port=\(port)"]) } ?? []
        if sslMode != .disable { parameters.append("sslmode=\(sslMode.rawValue)") }
        for (key, value) in [("sslrootcert", sslRootCert), ("sslcert", sslCert), ("sslkey", sslKey)] {
            if let value { parameters.append("\(key)=\(percentEncoded(value))") }
        }
        let query = parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
        return "postgresql://\(credentials)@\(location)/\(percentEncoded(database))\(query)"
    }

    public struct Problem: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public init(parsing text: String) throws(Problem) {
        func refuse(_ why: String) -> Problem {
            Problem(description: "\(why); expected postgresql://user[:password]@host[:port]/database or postgresql://user@/database?host=/socket/dir")
        }
        var rest = Substring(text)
        guard let scheme = rest.range(of: "://") else { throw refuse("no scheme") }
        guard ["postgres", "postgresql"].contains(rest[..<scheme.lowerBound].lowercased()) else {
            throw refuse("the scheme must be postgresql, got \(rest[..<scheme.lowerBound].prefix(20))")
        }
        rest = rest[scheme.upperBound...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw refuse("no database") }
        let databaseText = rest[rest.index(after: slash)...]
        rest = rest[..<slash]
        var userInfo: Substring = ""
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        guard let database = Self.decoded(databaseText), !database.isEmpty else { throw refuse("no database") }
        self.database = database
        if let colon = userInfo.firstIndex(of: ":") {
            guard let user = Self.decoded(userInfo[..<colon]), let password = Self.decoded(userInfo[userInfo.index(after: colon)...]) else {
                throw refuse("bad percent-encoding in the user or password")
            }
            self.user = user
            self.password = password
        } else {
            guard let user = Self.decoded(userInfo) else { throw refuse("bad percent-encoding in the user") }
            self.user = user
            password = nil
        }
        guard !user.isEmpty else { throw refuse("no user") }
        port = 5432
        host = nil
        socketDirectory = nil
        var hostText = rest
        if hostText.hasPrefix("[") {
            guard let close = hostText.firstIndex(of: "]") else { throw refuse("an IPv6 address needs its closing ]") }
            host = String(hostText[hostText.index(after: hostText.startIndex)..<close])
            hostText = hostText[hostText.index(after: close)...]
            if hostText.hasPrefix(":") { port = try Self.port(hostText.dropFirst(), refuse) } else if !hostText.isEmpty {
                throw refuse("unexpected text after the address")
            }
        } else if let colon = hostText.lastIndex(of: ":") {
            host = String(hostText[..<colon])
            port = try Self.port(hostText[hostText.index(after: colon)...], refuse)
        } else if !hostText.isEmpty {
            host = String(hostText)
        }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let key = parts.first.map(String.init) ?? ""
            let value = parts.count > 1 ? Self.decoded(parts[1]) : ""
            guard let value else { throw refuse("bad percent-encoding in \(key)") }
            switch key {
            case "host":
                guard value.hasPrefix("/") else { throw refuse("host= in the query is a socket directory (an absolute path)") }
                socketDirectory = value
                host = nil
            case "port": port = try Self.port(Substring(value), refuse)
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    let allowed = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw refuse("sslmode=\(value.prefix(20)) is not supported (allowed: \(allowed))")
                }
                sslMode = mode
            case "sslrootcert", "sslcert", "sslkey":
                guard value.hasPrefix("/") else { throw refuse("\(key) must be an absolute path to a PEM file") }
                switch key {
                case "sslrootcert": sslRootCert = value
                case "sslcert": sslCert = value
                default: sslKey = value
                }
            default: throw refuse("unknown parameter \(key.prefix(30)) (allowed: host, port, sslmode, sslrootcert, sslcert, sslkey)")
            }
        }
        if host == nil, socketDirectory == nil { throw refuse("no host") }
        if sslMode != .disable, socketDirectory != nil { throw refuse("sslmode=\(sslMode.rawValue) needs a TCP host: PostgreSQL has no TLS on a Unix socket") }
        if (sslCert == nil) != (sslKey == nil) { throw refuse("sslcert and sslkey go together (a client certificate and its key)") }
        if sslMode == .disable, sslRootCert != nil || sslCert != nil { throw refuse("sslrootcert, sslcert and sslkey need sslmode=require, verify-ca or verify-full") }
    }

    private static func port(_ text: Substring, _ refuse: (String) -> Problem) throws(Problem) -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else { throw refuse("the port must be 1–65535, got \(text.prefix(20))") }
        return port
    }

    private static func decoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let high = utf8.index(after: index)
                guard high < utf8.endIndex, utf8.index(after: high) < utf8.endIndex,
                      let value = UInt8(String(decoding: [utf8[high], utf8[utf8.index(after: high)]], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                index = utf8.index(high, offsetBy: 2)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isLetter && byte < 128 || c.isNumber && byte < 128 || "-._~/".contains(c) { out.append(c) } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
