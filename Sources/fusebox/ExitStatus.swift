import ArgumentParser

/// Every exit status the CLI uses, one number per kind of failure (the
/// numbers from 64 up follow BSD's sysexits.h). docs/exit-codes.md lists them.
enum ExitStatus {
    /// The sidecar answered the request with an error other than an unknown name.
    static let refused: Int32 = 1
    /// `ctl call`: the breaker (or every chain member) did not permit the call.
    static let notPermitted: Int32 = 2
    /// The sidecar knows no breaker or chain by that name.
    static let unknownName: Int32 = 3
    /// Bad flags or arguments (ArgumentParser's own status for a validation error).
    static let usage: Int32 = 64
    /// The configuration or scenario file is invalid.
    static let configuration: Int32 = 65
    /// A file to read does not exist (a store, a scenario).
    static let noInput: Int32 = 66
    /// The sidecar's socket cannot be reached.
    static let unavailable: Int32 = 69
    /// `serve` cannot start: a socket or port in use, a store or log file that cannot be opened.
    static let cannotStart: Int32 = 71
    /// An output file cannot be created.
    static let cannotCreate: Int32 = 73
    /// The store (or a fleet's PostgreSQL) failed while being read or written.
    static let storeFailed: Int32 = 74
    /// The configuration does not allow the command (admin_socket: off for force and reset).
    static let notConfigured: Int32 = 78
}
