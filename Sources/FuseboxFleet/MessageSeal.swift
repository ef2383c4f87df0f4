import Crypto
import FuseboxConfig

/// Signs and checks the fleet's NOTIFY payloads with HMAC-SHA256 over the
/// fleet secret. PostgreSQL lets any role that can connect NOTIFY on any
/// channel, so a payload is believed only with a valid seal:
/// `fb1.<64 hex digits>.<json>`, the code over the JSON's bytes.
struct MessageSeal: Sendable {
    private let key: SymmetricKey
    static let prefix = "fb1."

    init(_ secret: FleetSecret) { key = SymmetricKey(data: secret.bytes) }

    func seal(_ json: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(json.utf8), using: key)
        return Self.prefix + Self.hex(Array(code)) + "." + json
    }

    /// The JSON inside a payload whose seal holds, or why it is refused.
    func open(_ payload: String) -> Result<Substring, Refusal> {
        guard payload.hasPrefix(Self.prefix) else { return .failure(.unsigned) }
        let rest = payload.utf8.dropFirst(Self.prefix.utf8.count)
        guard rest.count > 65, let code = Self.bytes(hex: rest.prefix(64)), rest[rest.index(rest.startIndex, offsetBy: 64)] == UInt8(ascii: ".")
        else { return .failure(.malformed) }
        let json = rest.dropFirst(65)
        // Compared in constant time by swift-crypto.
        guard HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: Array(json), using: key) else { return .failure(.signature) }
        return .success(Substring(json))
    }

    /// Why a peer message was not applied; the label of `fusebox_fleet_messages_refused_total`.
    enum Refusal: String, Error, CaseIterable {
        /// No seal: written by something that is not a Fusebox of this version.
        case unsigned
        /// A seal in the wrong form, or JSON that is not a fleet message.
        case malformed
        /// A seal made with another key: a forgery, or a sidecar with another secret.
        case signature
        /// Sent longer ago than the replay window, or from the future.
        case stale
        /// A sequence number at or below the sender's last: a replay.
        case replayed
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func bytes(hex: Substring.UTF8View) -> [UInt8]? {
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        var iterator = hex.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let h = value(high), let l = value(low) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }
}
