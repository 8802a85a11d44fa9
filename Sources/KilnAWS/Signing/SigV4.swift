import Foundation
import KilnCore
import Synchronization

/// AWS credentials. `description` never shows the secret or the session token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working; nil for long-term keys.
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        """
        AWSCredentials(\(accessKeyID)\(sessionToken == nil ? "" : ", temporary")\
        \(expiration.map { ", expires \($0)" } ?? ""))
        """
    }
}

/// A request as SigV4 sees it.
public struct SignableRequest: Sendable {
    public var method: String
    public var url: URLComponents
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, url: URLComponents, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// Signature Version 4 in header form, a pure function of the request, the
/// credentials, region, service and time: no I/O, no clock. Step numbers
/// are those of AWS's "Create a signed AWS API request" guide.
public struct SigV4Signer: Sendable {
    public let region: String
    public let service: String
    /// S3-style services sign the payload hash header; the Query and JSON
    /// APIs Kiln uses do not need it, so it is off unless asked for.
    public var includeContentSHA256Header = false
    private let keys: SigningKeyCache

    public init(region: String, service: String, keys: SigningKeyCache = SigningKeyCache()) {
        self.region = region
        self.service = service
        self.keys = keys
    }

    /// The headers to add to the request: `X-Amz-Date`, `Authorization`,
    /// and `X-Amz-Security-Token` (and `X-Amz-Content-SHA256`) where needed.
    public func sign(
        _ request: SignableRequest, credentials: AWSCredentials, date: Date
    ) -> [(name: String, value: String)] {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        let payloadHash = SHA256Digest.hex(of: request.body)

        var headers = request.headers
        let host = request.url.port.map { "\(request.url.host ?? ""):\($0)" } ?? (request.url.host ?? "")
        if !headers.contains(where: { $0.name.lowercased() == "host" }) { headers.append(("Host", host)) }
        var added: [(name: String, value: String)] = [("X-Amz-Date", amzDate)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        if includeContentSHA256Header { added.append(("X-Amz-Content-SHA256", payloadHash)) }
        headers += added

        // Step 1: the canonical request.
        var canonicalHeaders: [String: String] = [:]
        for (name, value) in headers {
            let key = name.lowercased()
            let trimmed = Self.collapseSpaces(value)
            canonicalHeaders[key] = canonicalHeaders[key].map { "\($0),\(trimmed)" } ?? trimmed
        }
        let signedNames = canonicalHeaders.keys.sorted()
        let signedHeaders = signedNames.joined(separator: ";")
        let canonicalRequest = [
            request.method.uppercased(),
            Self.canonicalPath(request.url.percentEncodedPath),
            Self.canonicalQuery(request.url.percentEncodedQuery),
            signedNames.map { "\($0):\(canonicalHeaders[$0]!)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")

        // Step 2: the string to sign.
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, scope, SHA256Digest.hex(of: Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")

        // Steps 3 and 4: the signing key (derived once per day, region and
        // service) and the signature.
        let key = keys.key(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        let signature = hex(hmacSHA256(key: key, data: Array(stringToSign.utf8)))

        // Step 5: the Authorization header.
        added.append(
            (
                "Authorization",
                """
                AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), \
                SignedHeaders=\(signedHeaders), Signature=\(signature)
                """
            ))
        return added
    }

    static func amzDate(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ",
            parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec)
    }

    static func collapseSpaces(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    /// The path as sent (already percent-encoded once), "/" when empty.
    /// Services other than S3 encode each segment twice; the encoded path
    /// is encoded once more here.
    static func canonicalPath(_ encodedPath: String) -> String {
        if encodedPath.isEmpty { return "/" }
        return encodedPath.split(separator: "/", omittingEmptySubsequences: false)
            .map { uriEncode(String($0)) }
            .joined(separator: "/")
    }

    /// Query parameters sorted by name then value, each encoded as SigV4 wants.
    static func canonicalQuery(_ encodedQuery: String?) -> String {
        guard let encodedQuery, !encodedQuery.isEmpty else { return "" }
        let pairs = encodedQuery.split(separator: "&").map { part -> (String, String) in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pieces[0]).removingPercentEncoding ?? String(pieces[0])
            let value = pieces.count > 1 ? (String(pieces[1]).removingPercentEncoding ?? String(pieces[1])) : ""
            return (uriEncode(name), uriEncode(value))
        }
        return pairs.sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(
            separator: "&")
    }

    /// RFC 3986 encoding: everything but unreserved characters, hex upper case.
    public static func uriEncode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}

/// Derived signing keys, one per secret, day, region and service: deriving
/// takes four HMACs, and a pipeline signs hundreds of calls a day with the same.
public final class SigningKeyCache: Sendable {
    private struct Cache {
        var keys: [String: [UInt8]] = [:]
        var derivations = 0
    }
    private let cache = Mutex(Cache())

    public init() {}

    /// How many keys were derived (the rest came from the cache).
    public var derivations: Int { cache.withLock { $0.derivations } }

    func key(secret: String, day: String, region: String, service: String) -> [UInt8] {
        // The secret's digest, not the secret, names the entry.
        let name = "\(SHA256Digest.hex(of: Array(secret.utf8)))/\(day)/\(region)/\(service)"
        return cache.withLock { cache in
            if let key = cache.keys[name] { return key }
            let dateKey = hmacSHA256(key: Array("AWS4\(secret)".utf8), data: Array(day.utf8))
            let regionKey = hmacSHA256(key: dateKey, data: Array(region.utf8))
            let serviceKey = hmacSHA256(key: regionKey, data: Array(service.utf8))
            let signingKey = hmacSHA256(key: serviceKey, data: Array("aws4_request".utf8))
            if cache.keys.count > 64 { cache.keys.removeAll() }
            cache.keys[name] = signingKey
            cache.derivations += 1
            return signingKey
        }
    }
}
