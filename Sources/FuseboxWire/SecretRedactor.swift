/// Masks credentials in error text before it leaves the process (HTTP, logs,
/// the store, subscribers): provider error bodies and exception messages
/// often echo the request's `Authorization` header or API key. Masked, each
/// secret reads `[REDACTED]`. The patterns (docs/security.md lists them):
/// - the credential after an auth scheme word (`Bearer`, `Basic`, `Token`,
///   `Digest`, `Negotiate`), the scheme itself kept;
/// - a value after a key naming a secret (`api_key=…`, `"password": "…"`,
///   `x-api-key: …`): keys ending in api_key, apikey, api-key, secret,
///   secret_key, password, passwd, token, authorization, credential(s),
///   private_key or access_key (so `access_token` is one, `tokens` is not).
///   When that value is a scheme word (`Authorization: Bearer …`,
///   `authorization=Basic …`), the credential after the scheme is masked;
/// - a word of 16 or more characters starting as known keys do: `sk-`, `sk_`,
///   `rk_`, `pk_`, `ghp_`, `gho_`, `ghs_`, `github_pat_`, `xox`, `AKIA`,
///   `ASIA`, `AIza`, `eyJ` (a JWT), `hf_`, `glpat-`.
/// Linear in the text's length; the text is at most 1 KiB by then.
public enum SecretRedactor {
    public static let mask = "[REDACTED]"

    static let secretKeys: [[UInt8]] = [
        "api_key", "apikey", "api-key", "secret", "secret_key", "password", "passwd", "token", "authorization",
        "credential", "credentials", "private_key", "access_key",
    ].map { Array($0.utf8) }
    static let schemes: [[UInt8]] = ["bearer", "basic", "token", "digest", "negotiate"].map { Array($0.utf8) }
    static let keyPrefixes: [[UInt8]] = [
        "sk-", "sk_", "rk_", "pk_", "ghp_", "gho_", "ghs_", "github_pat_", "xox", "AKIA", "ASIA", "AIza", "eyJ", "hf_", "glpat-",
    ].map { Array($0.utf8) }

    public static func redact(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        var changed = false
        while i < bytes.count {
            guard isWordByte(bytes[i]) else {
                out.append(bytes[i])
                i += 1
                continue
            }
            var end = i
            while end < bytes.count, isWordByte(bytes[end]) { end += 1 }
            let word = bytes[i..<end]
            if word.count >= 16, keyPrefixes.contains(where: { word.starts(with: $0) }) {
                out += mask.utf8
                changed = true
                i = end
                continue
            }
            out += word
            i = end
            let lower = word.map(lowercased)
            if schemes.contains(where: { $0 == lower }), let (from, to) = valueAfter(bytes, end, separators: [0x20]) {
                out += bytes[end..<from] + mask.utf8
                changed = true
                i = to
            } else if secretKeys.contains(where: { lower.ends(with: $0) }),
                      let (from, to) = valueAfter(bytes, end, separators: [0x3D, 0x3A])  // = :
            {
                out += bytes[end..<from]
                if schemes.contains(where: { $0 == bytes[from..<to].map(lowercased) }) {
                    i = from  // `Authorization: Bearer <token>`: the scheme word is next, and masks what follows it
                } else {
                    out += mask.utf8
                    changed = true
                    i = to
                }
            }
        }
        return changed ? String(decoding: out, as: UTF8.self) : text
    }

    /// Letters, digits and `-_.+/~`: what keys and tokens are made of.
    static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x5F, 0x2E, 0x2B, 0x2F, 0x7E: return true
        default: return false
        }
    }

    /// After a key: optional closing quote and spaces, one of `separators`
    /// (a space alone counts for a scheme), spaces and an opening quote, then
    /// the value up to a space, quote, comma, `&` or `;`. Its byte range.
    static func valueAfter(_ bytes: [UInt8], _ start: Int, separators: [UInt8]) -> (Int, Int)? {
        var i = start
        if i < bytes.count, bytes[i] == 0x22 || bytes[i] == 0x27 { i += 1 }
        if separators == [0x20] {
            guard i < bytes.count, bytes[i] == 0x20 else { return nil }
        } else {
            while i < bytes.count, bytes[i] == 0x20 { i += 1 }
            guard i < bytes.count, separators.contains(bytes[i]) else { return nil }
            i += 1
        }
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x22 || bytes[i] == 0x27 { i += 1 }
        var end = i
        while end < bytes.count, ![0x20, 0x22, 0x27, 0x2C, 0x26, 0x3B, 0x0A, 0x0D, 0x09, 0x7D].contains(bytes[end]) { end += 1 }
        return end > i ? (i, end) : nil
    }

    static func lowercased(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte + 0x20 : byte }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix) }
}
