import FuseboxCore
import FuseboxText
import FuseboxWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FuseboxJSON

/// How `ctl` shows breakers and transitions to a person.
enum StatusTable {
    static let columns = ["BREAKER", "STATE", "SINCE", "OPEN UNTIL", "FAILS", "CALLS", "FAIL%", "SLOW%", "IN FLIGHT", "QUEUED", "LAST ERROR"]

    static func render(_ breakers: [JSONValue]) -> String {
        var rows = [columns]
        for b in breakers {
            rows.append([
                text(b["name"]), text(b["state"]), time(b["state_since"]), time(b["open_until"]),
                text(b["consecutive_failures"]), text(b["calls_in_window"]), percent(b["failure_rate"]),
                percent(b["slow_call_rate"]), text(b["permits_in_flight"]), text(b["queued"]),
                [text(b["last_status"]), text(b["last_error"])].filter { $0 != "-" }.joined(separator: " ").prefix(40).description,
            ])
        }
        return TextTable(rows).render()
    }

    /// `15:41:59.123  openai  closed → open  (consecutive_failures)  failures=5  last: 503 upstream down`
    static func describe(_ event: JSONValue) -> String {
        guard event["event"] == .string("transition") else { return JSONWriter.text(event) }
        var line = "\(time(event["timestamp"]))  \(text(event["breaker"] ?? event["breaker_name"]))  \(text(event["old_state"])) → \(text(event["new_state"]))  (\(text(event["reason"])))"
        line += "  failures=\(text(event["failure_count"])) rate=\(percent(event["failure_rate"]))"
        if event["open_until"] != .null, event["open_until"] != nil { line += " until \(time(event["open_until"]))" }
        let last = [text(event["last_status"]), text(event["last_error"])].filter { $0 != "-" }
        if !last.isEmpty { line += "  last: " + last.joined(separator: " ") }
        return line
    }

    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s.escapingControlCharacters
        case .number(let n)?: return n
        case .bool(let b)?: return b ? "true" : "false"
        default: return "-"
        }
    }

    /// The time of day part of an RFC 3339 stamp.
    static func time(_ value: JSONValue?) -> String {
        guard case .string(let stamp)? = value, let t = stamp.firstIndex(of: "T") else { return "-" }
        return String(stamp[stamp.index(after: t)...].dropLast())
    }

    static func percent(_ value: JSONValue?) -> String {
        guard case .number(let n)? = value, let rate = Double(n) else { return "-" }
        return "\(Int((rate * 100).rounded()))%"
    }
}

func fflushStandardOutput() { fflush(nil) }
