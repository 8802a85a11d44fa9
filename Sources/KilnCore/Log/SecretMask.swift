import Foundation
import Synchronization

/// The secret values this process knows (job token, AWS secret and session
/// token, web identity token, ...). Everything Kiln prints passes through it.
/// Secrets learnt at run time (an STS session token) are added as they arrive.
public final class SecretMask: Sendable {
    public static let replacement = "[MASKED]"

    private let secrets = Mutex<[[UInt8]]>([])

    public init(_ values: [String] = []) {
        for value in values { add(value) }
    }

    /// Adds a secret and the forms in which it may be printed: as is,
    /// percent-encoded (a token inside a URL), and inside base64 (a
    /// Basic-auth header, `base64(user:token)`).
    public func add(_ value: String) {
        guard !value.isEmpty else { return }
        var forms = [value]
        if let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics), encoded != value {
            forms.append(encoded)
        }
        forms += Self.base64Forms(of: Array(value.utf8))
        secrets.withLock { secrets in
            for form in forms {
                let bytes = Array(form.utf8)
                if !secrets.contains(bytes) { secrets.append(bytes) }
            }
            // Longest first, so that a secret containing another is masked whole.
            secrets.sort { $0.count > $1.count }
        }
    }

    /// Base64 encodes 3 bytes as 4 characters (RFC 4648, section 4), so
    /// inside `base64(prefix + secret + suffix)` only the groups made of the
    /// secret's bytes alone are the same whatever surrounds it; which bytes
    /// those are depends on where the secret starts in its group (0, 1 or 2
    /// bytes in). One form per start: the secret from its first byte that
    /// begins a group, up to the last whole group. A form shorter than 8
    /// characters (GitLab's minimum for a masked variable) would mask
    /// ordinary text, and is left out.
    static func base64Forms(of secret: [UInt8]) -> [String] {
        var forms: [String] = []
        for skipped in 0..<3 {
            let whole = (secret.count - skipped) / 3 * 3
            guard whole >= 6 else { continue }
            let form = Data(secret[skipped..<(skipped + whole)]).base64EncodedString()
            if !forms.contains(form) { forms.append(form) }
        }
        return forms
    }

    public var isEmpty: Bool { secrets.withLock { $0.isEmpty } }

    /// Whether this exact value is one of the secrets (or holds one).
    public func contains(secretIn value: String) -> Bool {
        firstOccurrence(in: value) != nil
    }

    /// Where the first secret in `text` starts (a UTF-8 offset), in any of
    /// its forms; nil when there is none.
    public func firstOccurrence(in text: String) -> Int? {
        let bytes = Array(text.utf8)
        return snapshot.compactMap { secret in
            secret.count <= bytes.count
                ? (0...(bytes.count - secret.count)).first { start in
                    bytes[start..<(start + secret.count)].elementsEqual(secret)
                } : nil
        }.min()
    }

    var snapshot: [[UInt8]] { secrets.withLock { $0 } }

    /// Masks a complete text.
    public func mask(_ text: String) -> String {
        let secrets = snapshot
        guard !secrets.isEmpty else { return text }
        return String(decoding: Self.replaceAll(Array(text.utf8), secrets: secrets), as: UTF8.self)
    }

    static func replaceAll(_ bytes: [UInt8], secrets: [[UInt8]]) -> [UInt8] {
        replaceAllMarkingEnd(bytes, secrets: secrets).bytes
    }

    /// Replaces every secret; also returns where the last replacement ends
    /// in the output, the bytes after which are still as they arrived.
    static func replaceAllMarkingEnd(_ bytes: [UInt8], secrets: [[UInt8]]) -> (bytes: [UInt8], rawFrom: Int) {
        guard !secrets.isEmpty, !bytes.isEmpty else { return (bytes, 0) }
        var rawFrom = 0
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        let replacement = Array(replacement.utf8)
        var index = 0
        scan: while index < bytes.count {
            for secret in secrets where secret.count <= bytes.count - index {
                if bytes[index] == secret[0] && bytes[index..<(index + secret.count)].elementsEqual(secret) {
                    out.append(contentsOf: replacement)
                    rawFrom = out.count
                    index += secret.count
                    continue scan
                }
            }
            out.append(bytes[index])
            index += 1
        }
        return (out, rawFrom)
    }

    /// How many bytes at the end of `bytes` could be the start of a secret
    /// whose rest has not arrived yet.
    static func pendingPrefixLength(_ bytes: [UInt8], secrets: [[UInt8]]) -> Int {
        var longest = 0
        for secret in secrets {
            let limit = min(secret.count - 1, bytes.count)
            guard limit > longest else { continue }
            for length in stride(from: limit, to: longest, by: -1)
            where bytes[(bytes.count - length)...].elementsEqual(secret[0..<length]) {
                longest = length
                break
            }
        }
        return longest
    }
}

/// Masks a stream of bytes that arrives in pieces (a child's output): a secret
/// split across two writes is still masked, because the tail that could be
/// the start of a secret is held back until the next write or `finish()`.
public struct MaskingStream: Sendable {
    private let mask: SecretMask
    private var pending: [UInt8] = []

    public init(mask: SecretMask) { self.mask = mask }

    /// Returns the bytes that are safe to print now.
    public mutating func feed(_ chunk: some Collection<UInt8>) -> [UInt8] {
        let secrets = mask.snapshot
        pending.append(contentsOf: chunk)
        guard !secrets.isEmpty else {
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        // Mask every complete secret first, then hold back the raw tail that
        // could be the start of a secret whose rest is still to come.
        let (masked, rawFrom) = SecretMask.replaceAllMarkingEnd(pending, secrets: secrets)
        let held = SecretMask.pendingPrefixLength(Array(masked[rawFrom...]), secrets: secrets)
        pending = Array(masked[(masked.count - held)...])
        return Array(masked[..<(masked.count - held)])
    }

    /// Returns whatever is still held back, masked.
    public mutating func finish() -> [UInt8] {
        defer { pending.removeAll() }
        return SecretMask.replaceAll(pending, secrets: mask.snapshot)
    }
}
