/// The configuration `fusebox serve` runs with no file: the house plan's
/// example, kept as YAML so the default and the documentation are one text.
public enum DefaultConfiguration {
    public static let yaml = """
    socket: ./fusebox.sock          # mode 0600 unless socket_mode says otherwise
    admin_socket: ./fusebox-admin.sock
    http: 127.0.0.1:9464            # /metrics, /healthz, /readyz, /v1/breakers
    store: ./fusebox.db             # SQLite; "off" disables
    instance: hostname              # written into every log line and row
    log: stdout                     # JSON lines
    defaults:                       # applied to every breaker, then overridden
      trip:
        consecutive_failures: 5     # the seed's threshold
        failure_rate: 0.5           # off unless a window is set
        window: { kind: count, size: 100 }   # or { kind: time, seconds: 60, buckets: 10 }
        minimum_calls: 20
        slow_call: { threshold_ms: 30000, rate: 1.0 }
      open:
        duration: 60s               # the seed's reset_timeout
        backoff: { multiplier: 2, max: 10m }  # each failed probe lengthens the next open
        jitter: 0.1
        honor_retry_after: true
      half_open:
        probes: 1                   # the seed's single probe
        successes_to_close: 1
        max_wait: 30s
      classify:
        failure: [429, "5xx", timeout, connection]
        ignore: ["4xx"]
      permit_ttl: 120s
    breakers:
      openai: {}
      anthropic: {}
      ollama: { open: { duration: 10s } }
    chains:
      llm: [openai, anthropic, ollama]

    """

    /// The name shown for the embedded default wherever a file name would be.
    public static let sourceName = "<embedded default>"
}
