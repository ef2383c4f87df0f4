#if canImport(Glibc)
import Glibc
#endif
import FuseboxCore
import Testing
@testable import FuseboxConfig

@Suite("Configuration loading")
struct ConfigLoaderTests {
    func load(_ yaml: String) throws -> Configuration { try ConfigLoader.load(yaml: yaml, file: "test.yaml") }

    func failure(_ yaml: String) -> ConfigError? {
        do {
            _ = try load(yaml)
            return nil
        } catch {
            return error as? ConfigError
        }
    }

    @Test func theEmbeddedDefaultIsTheDocumentedOne() throws {
        let config = try ConfigLoader.loadDefault()
        #expect(config.engine.breakers.map(\.name) == ["openai", "anthropic", "ollama"])
        #expect(config.engine.chains == [ChainDefinition(name: "llm", breakers: ["openai", "anthropic", "ollama"])])
        #expect(config.defaults == BreakerPolicy.default)
        #expect(config.engine.breakers[0].policy == .default)
        var ollama = BreakerPolicy.default
        ollama.open.duration = .seconds(10)
        #expect(config.engine.breakers[2].policy == ollama)
        #expect(config.socket == "./fusebox.sock")
        #expect(config.adminSocket == "./fusebox-admin.sock")
        #expect(config.http == HTTPEndpoint(host: "127.0.0.1", port: 9464))
        #expect(config.store == "./fusebox.db")
        #expect(config.socketMode == 0o600)
    }

    @Test func defaultsMergeIntoEachBreakerKeyByKey() throws {
        let config = try load("""
        defaults:
          trip: { consecutive_failures: 3 }
          open: { duration: 5s }
        breakers:
          a: {}
          b:
            open: { jitter: 0 }
            half_open: { probes: 2 }
          c:
        """)
        let (a, b, c) = (config.engine.breakers[0].policy, config.engine.breakers[1].policy, config.engine.breakers[2].policy)
        #expect(a.trip.consecutiveFailures == 3 && a.open.duration == .seconds(5) && a.open.jitter == 0.1)
        #expect(b.trip.consecutiveFailures == 3 && b.open.duration == .seconds(5) && b.open.jitter == 0)
        #expect(b.halfOpen.probes == 2 && b.halfOpen.maxWait == .seconds(30))
        #expect(c == a)
        #expect(config.engine.chains.isEmpty)
    }

    @Test func aFileWithoutBreakersKeepsTheDefaultOnesOnItsDefaults() throws {
        let config = try load("defaults: { trip: { consecutive_failures: 2 } }\nsocket: /tmp/x.sock\n")
        #expect(config.engine.breakers.map(\.name) == ["openai", "anthropic", "ollama"])
        #expect(config.engine.breakers.allSatisfy { $0.policy.trip.consecutiveFailures == 2 })
        #expect(config.engine.breakers[2].policy.open.duration == .seconds(10))
        #expect(config.engine.chains.map(\.name) == ["llm"])
        #expect(config.socket == "/tmp/x.sock")
    }

    @Test(arguments: ["http: off", "http: false", "http: Off", "http: no"])
    func httpCanBeSwitchedOff(line: String) throws {
        #expect(try load(line).http == nil)
    }

    @Test func storeAndAdminSocketCanBeSwitchedOff() throws {
        let config = try load("store: off\nadmin_socket: false\n")
        #expect(config.store == nil && config.adminSocket == nil)
        #expect(try load("store: \"off.db\"").store == "off.db")
    }

    @Test func theFastPathIsOnUnlessSwitchedOff() throws {
        #expect(try load("").fastPath)
        #expect(try load("fast_path: false\n").fastPath == false)
        let error = try #require(failure("fast_path: sometimes\n"))
        #expect(error.key == "fast_path" && error.line == 1)
    }

    @Test func rulesCanBeSwitchedOff() throws {
        let config = try load("""
        defaults:
          trip: { consecutive_failures: off, failure_rate: off, window: off, slow_call: off }
          open: { backoff: off }
        breakers: { a: {} }
        """)
        let trip = config.engine.breakers[0].policy.trip
        #expect(trip.consecutiveFailures == nil && trip.failureRate == nil && trip.window == nil && trip.slowCall == nil)
        #expect(config.engine.breakers[0].policy.open.backoffMultiplier == 1)
    }

    @Test func budgetsReadAndInheritFromDefaultsKeyByKey() throws {
        let config = try load("""
        defaults: { max_in_flight: 4, queue: { max: 10, timeout: 2s }, rate: { requests: 500, per: 1m } }
        breakers:
          openai: { queue: { timeout: 500ms }, tokens: { budget: 90000, per: 1m } }
          ollama: { max_in_flight: off, queue: off, rate: off }
        """)
        let openai = config.engine.breakers[0].policy.budget
        #expect(openai.maxInFlight == 4)
        #expect(openai.queue == QueuePolicy(max: 10, timeout: .milliseconds(500)))
        #expect(openai.rate == RateLimit(amount: 500, per: .seconds(60)))
        #expect(openai.tokens == RateLimit(amount: 90_000, per: .seconds(60)))
        #expect(config.engine.breakers[1].policy.budget.isEmpty)
    }

    @Test func windowsAndClassificationRead() throws {
        let config = try load("""
        breakers:
          a:
            trip: { window: { kind: time, seconds: 30, buckets: 6 }, slow_call: { threshold_ms: 1500 } }
            classify: { failure: [500, "52x9"], ignore: [] }
        """.replacingOccurrences("\"52x9\"", with: "\"4xx\""))
        let policy = config.engine.breakers[0].policy
        #expect(policy.trip.window == .time(seconds: 30, buckets: 6))
        #expect(policy.trip.slowCall == SlowCallPolicy(threshold: .milliseconds(1500), rate: 1))
        #expect(policy.classify.failure == [.status(500), .statusClass(4)])
        #expect(policy.classify.ignore.isEmpty)
    }

    @Test func socketModeReadsAsOctal() throws {
        #expect(try load("socket_mode: 0660").socketMode == 0o660)
        #expect(try load("socket_mode: \"0600\"").socketMode == 0o600)
        #expect(failure("socket_mode: 0400")?.key == "socket_mode")
    }

    @Test func aRateAboveOneIsRefusedWithFileLineAndKey() throws {
        let error = try #require(failure("""
        defaults:
          trip:
            failure_rate: 1.5
        """))
        #expect(error.file == "test.yaml" && error.line == 3 && error.key == "defaults.trip.failure_rate")
        #expect(error.description == "test.yaml:3:19: defaults.trip.failure_rate: must be a number above 0 to 1, got 1.5")
    }

    @Test func anUnknownKeyIsRefusedAndTheAllowedOnesListed() throws {
        let error = try #require(failure("breakers:\n  openai:\n    tripp: {}\n"))
        #expect(error.line == 3 && error.key == "breakers.openai.tripp")
        #expect(error.message.contains("unknown key; allowed here: trip, open, half_open, classify, permit_ttl"))
        #expect(failure("sockets: x")?.key == "sockets")
    }

    @Test func aChainNamingAMissingBreakerIsRefused() throws {
        let error = try #require(failure("breakers: { openai: {}, anthropic: {} }\nchains:\n  llm: [openai, olama]\n"))
        #expect(error.line == 3 && error.key == "chains.llm[1]")
        #expect(error.message == "names breaker \"olama\", which is not defined; defined breakers: openai, anthropic")
    }

    @Test(arguments: [
        ("defaults: { open: { duration: 30 } }", "defaults.open.duration", "expected a duration"),
        ("defaults: { open: { duration: 0s } }", "defaults.open.duration", "longer than zero"),
        ("defaults: { open: { duration: 20m } }", "defaults", "shorter than open.duration"),
        ("defaults: { half_open: { probes: many } }", "defaults.half_open.probes", "whole number"),
        ("defaults: { trip: { window: { kind: sliding } } }", "defaults.trip.window.kind", "count or time"),
        ("defaults: { trip: { window: { kind: count, seconds: 5 } } }", "defaults.trip.window.seconds", "time window"),
        ("defaults: { classify: { failure: [700] } }", "defaults.classify.failure[0]", "HTTP status"),
        ("defaults: { open: { jitter: 1 } }", "defaults.open.jitter", "below 1"),
        ("defaults: { open: { honor_retry_after: maybe } }", "defaults.open.honor_retry_after", "true or false"),
        ("breakers: [a, b]", "breakers", "expected a mapping"),
        ("breakers: { \"a b\": {} }", "breakers.a b", "letters, digits"),
        ("chains: { c: [] }", "chains.c", "at least one"),
        ("socket: a.sock\nsocket: b.sock", "socket", "given twice"),
        ("http: localhost", "http", "host:port"),
        ("http: \"127.br]eakers:0.1:9464\"", "http", "host name or IP address"),
        ("socket: x.sock\nadmin_socket: x.sock", "admin_socket", "must differ"),
        ("defaults: { max_in_flight: 0 }", "defaults.max_in_flight", "from 1 to 1000000"),
        ("defaults: { queue: { max: 5 } }", "defaults", "queue needs max_in_flight"),
        ("defaults: { max_in_flight: 2, queue: { timeout: 0s } }", "defaults.queue.timeout", "longer than zero"),
        ("defaults: { rate: { per: 1m } }", "defaults.rate", "needs requests"),
        ("defaults: { rate: { requests: 10, every: 1m } }", "defaults.rate.every", "requests, per"),
        ("defaults: { tokens: { budget: 9000, per: 2d } }", "defaults.tokens.per", "1ms to 24h"),
    ])
    func impossibleValuesAreRefused(yaml: String, key: String, message: String) throws {
        let error = try #require(failure(yaml), "\(yaml) should be refused")
        #expect(error.key == key)
        #expect(error.message.contains(message), "\(error)")
        #expect(error.line != nil)
    }

    @Test func brokenYAMLIsReportedWithItsPosition() throws {
        let error = try #require(failure("breakers:\n  a: { open: \n  b: ]\n"))
        #expect(error.message.hasPrefix("not valid YAML"))
        #expect(error.line != nil)
    }

    @Test func aMissingFileIsReported() {
        #expect(throws: ConfigError.self) { try ConfigLoader.load(path: "/nonexistent/fusebox.yaml") }
    }

    @Test func theRenderedConfigurationLoadsBackTheSame() throws {
        let original = try load("""
        socket: "/run/fusebox/a b.sock"
        admin_socket: off
        socket_mode: "0660"
        http: "[::1]:9000"
        store: off
        instance: edge-1
        log: /var/log/fusebox.log
        defaults:
          trip: { consecutive_failures: off, window: { kind: time, seconds: 90, buckets: 9 }, minimum_calls: 7 }
          open: { duration: 1500ms, backoff: { multiplier: 1.5, max: 2h }, jitter: 0.25, honor_retry_after: false }
          classify: { failure: [timeout, "5xx"], ignore: [404] }
        breakers:
          x: { half_open: { probes: 3, successes_to_close: 2, max_wait: 45s }, permit_ttl: 10s }
          y: { trip: { slow_call: off, failure_rate: off }, max_in_flight: 8, queue: { max: 50, timeout: 2500ms },
               rate: { requests: 500, per: 1m }, tokens: { budget: 90000, per: 1m } }
        chains: { c: [y, x] }
        """)
        let rendered = ConfigRenderer.yaml(original)
        #expect(try load(rendered) == original)
        #expect(try load(ConfigRenderer.yaml(ConfigLoader.loadDefault())) == ConfigLoader.loadDefault())
    }
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

@Suite("The fleet section")
struct FleetConfigTests {
    func load(_ yaml: String) throws -> Configuration { try ConfigLoader.load(yaml: yaml, file: "test.yaml") }

    /// A fleet secret file (32+ bytes), written once for the suite.
    static let secretFile: String = {
        let path = "/tmp/fusebox-config-test-\(getpid()).secret"
        let text = "0123456789abcdef0123456789abcdef-fleet\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        return path
    }()
    var secret: String { "secret_file: \"\(Self.secretFile)\"" }

    func message(_ yaml: String) -> String? {
        do {
            _ = try load(yaml)
            return nil
        } catch {
            return (error as? ConfigError)?.description
        }
    }

    @Test func aURLOfEitherFormIsRead() throws {
        let tcp = try PostgresURL(parsing: "postgresql://fusebox:s%40cret@db.internal:6543/history")
        #expect(tcp.user == "fusebox" && tcp.password == "s@cret" && tcp.host == "db.internal" && tcp.port == 6543 && tcp.database == "history")
        #expect(tcp.description == "postgresql://fusebox:***@db.internal:6543/history", "the password never shows")
        let socket = try PostgresURL(parsing: "postgres://fusebox@/fusebox?host=/run/postgresql")
        #expect(socket.socketPath == "/run/postgresql/.s.PGSQL.5432")
    }

    @Test func tlsSettingsAreReadAsLibpqSpellsThemAndShownBack() throws {
        let url = try PostgresURL(parsing: "postgresql://u:secret@db.example:6432/fleet?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/c.pem&sslkey=/etc/k.pem")
        #expect(url.sslMode == .verifyFull && url.sslRootCert == "/etc/ca.pem" && url.sslCert == "/etc/c.pem" && url.sslKey == "/etc/k.pem")
        #expect(url.description == "postgresql://u:***@db.example:6432/fleet?sslmode=verify-full&sslrootcert=/etc/ca.pem&sslcert=/etc/c.pem&sslkey=/etc/k.pem")
        #expect(try PostgresURL(parsing: url.description.replacingOccurrences(of: ":***", with: ":secret")) == url)
        #expect(try PostgresURL(parsing: "postgresql://u@h/d").sslMode == .disable)
    }

    @Test func aBadURLSaysWhatIsWrongAndWhatIsAllowed() {
        #expect(message("fleet: { postgres: \"mysql://a@b/c\" }")?.contains("test.yaml:1:20: fleet.postgres: the scheme must be postgresql") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b\" }")?.contains("no database") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b:99999/c\" }")?.contains("the port must be 1–65535") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c?sslmode=prefer\" }")?
            .contains("sslmode=prefer is not supported (allowed: disable, require, verify-ca, verify-full)") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@/c?host=/run&sslmode=require\" }")?.contains("no TLS on a Unix socket") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c?sslmode=require&sslcert=/c.pem\" }")?.contains("go together") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c?sslrootcert=/ca.pem\" }")?.contains("need sslmode=") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c?sslmode=verify-ca&sslrootcert=ca.pem\" }")?.contains("absolute path") == true)
        #expect(message("fleet: { name: x }")?.contains("needs postgres") == true)
    }

    @Test func fleetScopedBudgetsNeedAFleetAndASharedBreaker() throws {
        let budget = "breakers: { openai: { rate: { requests: 10, per: 1m, scope: fleet } } }"
        #expect(message(budget)?.contains("needs a fleet: section") == true)
        let config = try load("fleet: { postgres: \"postgresql://a@b/c\", \(secret) }\n" + budget)
        #expect(config.engine.breakers[0].policy.budget.fleetScoped == [.rate])
        #expect(message("fleet: { postgres: \"postgresql://a@b/c\", \(secret) }\nbreakers: { openai: { fleet: false, max_in_flight: { max: 4, scope: fleet } } }")?
            .contains("fleet: false keeps this breaker local") == true)
        #expect(message("breakers: { openai: { rate: { requests: 10, per: 1m, scope: region } } }")?.contains("scope must be host or fleet") == true)
    }

    @Test func theEffectiveConfigurationShowsTheFleetWithoutItsPassword() throws {
        let config = try load("fleet: { postgres: \"postgresql://u:pw@h/d\", name: eu, \(secret) }\nbreakers: { openai: { max_in_flight: { max: 4, scope: fleet } } }")
        let text = ConfigRenderer.yaml(config)
        #expect(text.contains("postgres: \"postgresql://u:***@h:5432/d\""))
        #expect(!text.contains("pw@"))
        #expect(text.contains("max_in_flight: { max: 4, scope: fleet }"))
        #expect(try load(text) .fleet?.name == "eu", "the rendering loads back")
        #expect(text.contains("secret_file: \"\(Self.secretFile)\""), "where the secret is, not what it is")
        #expect(!text.contains("0123456789abcdef"))
        #expect("\(config.fleet!)".contains("0123456789abcdef") == false, "a dump of the settings shows no secret either")
    }

    @Test func aFleetNeedsASecretOfAtLeast32Bytes() throws {
        let none = message("fleet: { postgres: \"postgresql://a@b/c\" }")
        #expect(none?.contains("test.yaml:1:8: fleet: needs secret_file") == true, "\(none ?? "")")
        #expect(none?.contains("FUSEBOX_FLEET_SECRET") == true)
        let short = "/tmp/fusebox-config-test-\(getpid())-short.secret"
        let fd = open(short, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = write(fd, "too short\n", 10)
        close(fd)
        defer { unlink(short) }
        #expect(message("fleet: { postgres: \"postgresql://a@b/c\", secret_file: \"\(short)\" }")?.contains("holds 9 bytes; a fleet secret needs at least 32 bytes") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c\", secret_file: /nonexistent/secret }")?.contains("cannot open /nonexistent/secret") == true)
        #expect(message("fleet: { postgres: \"postgresql://a@b/c\", secret_file: /tmp }")?.contains("/tmp is not a regular file") == true)
        let config = try load("fleet: { postgres: \"postgresql://a@b/c\", \(secret) }")
        #expect(config.fleet?.secret.bytes == Array("0123456789abcdef0123456789abcdef-fleet".utf8), "the file's last newline is not part of it")
    }
}
