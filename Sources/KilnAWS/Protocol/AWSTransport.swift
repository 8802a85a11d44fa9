import Foundation
import KilnCore
import KilnHTTP
import Synchronization

/// Whether a call may be sent again when its first attempt's outcome is unknown.
public enum Mutation: Sendable {
    /// Reads change nothing.
    case readOnly
    /// Changes that land the same however often they are sent (setting a
    /// tag, a size, a default version; calls carrying a `ClientToken`).
    case idempotent
    /// Changes that must not happen twice: sent again only after an answer
    /// that proves the first attempt did nothing (throttling, refused
    /// connection), never after a dropped connection or a 5xx.
    case once
}

/// Requests sent, by `service:Action`, for the economy-of-calls reports.
public final class CallCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public init() {}
    func record(_ service: AWSService, _ action: String) {
        counts.withLock { $0["\(service.rawValue):\(action)", default: 0] += 1 }
    }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
    public var total: Int { counts.withLock { $0.values.reduce(0, +) } }
}

/// How a request reaches AWS, for one region: the endpoints, the HTTP
/// client, the retry policy, the log and the clock, with the signing keys
/// cached and the requests counted. Signed with whatever credentials the
/// caller gives (none for STS's AssumeRoleWithWebIdentity, a source
/// profile's keys for AssumeRole, the chain's for everything else).
public struct AWSTransport: Sendable {
    public let endpoints: AWSEndpoints
    public let http: HTTPClient
    public let retry: RetryPolicy
    public let log: LogWriter?
    public let clock: Clock
    public let calls = CallCounter()
    let keys = SigningKeyCache()

    public init(
        endpoints: AWSEndpoints, http: HTTPClient, retry: RetryPolicy = RetryPolicy(), log: LogWriter? = nil,
        clock: Clock = .system
    ) {
        self.endpoints = endpoints
        self.http = http
        self.retry = retry
        self.log = log
        self.clock = clock
    }

    public var region: String { endpoints.region }

    // MARK: Query protocol (EC2, Auto Scaling, ELBv2, STS)

    /// One Query API call; returns the answer's root element.
    func query(
        _ service: AWSService, _ action: String, _ parameters: QueryParameters, mutation: Mutation,
        signedWith credentials: AWSCredentials?
    ) throws -> XMLElement {
        var body = QueryParameters()
        body.add("Action", action)
        body.add("Version", service.apiVersion)
        for pair in parameters.pairs { body.add(pair.name, pair.value) }
        let response = try send(
            service, action, headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: Array(body.formEncoded().utf8), mutation: mutation, signedWith: credentials)
        do {
            return try XMLReader.parse(Array(response.body))
        } catch {
            throw AWSMalformedResponse(service: service.rawValue, action: action, problem: "\(error)")
        }
    }

    // MARK: JSON 1.1 protocol (SSM)

    func json(
        _ service: AWSService, target: String, _ body: [String: any Sendable], mutation: Mutation,
        signedWith credentials: AWSCredentials?
    ) throws -> [String: Any] {
        let payload = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let action = String(target.split(separator: ".").last ?? Substring(target))
        let response = try send(
            service, action, headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", target)],
            body: Array(payload), mutation: mutation, signedWith: credentials)
        if response.body.isEmpty { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] else {
            throw AWSMalformedResponse(service: service.rawValue, action: action, problem: "not a JSON object")
        }
        return object
    }

    // MARK: sending, with retries

    func send(
        _ service: AWSService, _ action: String, headers: [(name: String, value: String)], body: [UInt8],
        mutation: Mutation, signedWith credentials: AWSCredentials?
    ) throws -> HTTPResponse {
        let endpoint = endpoints.url(for: service)
        guard let url = URLComponents(string: endpoint.hasSuffix("/") ? endpoint : endpoint + "/") else {
            throw KilnError.badConfiguration("\(endpoint): not a URL for \(service.rawValue)")
        }
        let signer = SigV4Signer(region: region, service: service.signingName, keys: keys)
        var attempt = 0
        while true {
            attempt += 1
            var request = HTTPRequest(method: "POST", url: url.string!, headers: headers, body: Data(body))
            if let credentials {
                // Signed anew on every attempt: the date moves on.
                request.headers += signer.sign(
                    SignableRequest(method: "POST", url: url, headers: headers, body: body),
                    credentials: credentials, date: clock.now())
            }
            calls.record(service, action)
            let retryReason: String
            do {
                let response = try http.send(request)
                if (200..<300).contains(response.status) { return response }
                let error = Self.parseError(response, service: service, action: action)
                let proven = error.isRefusedForNow  // throttled or busy: AWS did nothing
                guard proven || error.isServerError, attempt < retry.maxAttempts,
                    proven || mutation != .once
                else { throw error }
                retryReason =
                    error.isThrottling
                    ? "throttled (\(error.code))"
                    : error.isBusy
                        ? "the group is busy (\(error.code))" : "server error \(error.httpStatus) (\(error.code))"
            } catch let error as HTTPError {
                // Refused or unresolvable: the request never left. Anything
                // later (dropped, timed out) may have reached AWS.
                let neverSent = error.failure == .connectionRefused || error.failure == .couldNotResolve
                guard error.isRetryable else { throw error }
                if !neverSent && mutation == .once {
                    throw AWSUnknownOutcome(service: service.rawValue, action: action, underlying: error.detail)
                }
                guard attempt < retry.maxAttempts else {
                    // One rule (docs/architecture.md, AWS): refused or
                    // unresolvable on every attempt, the service is not
                    // there (69); dropped, reset or timed out, it may be
                    // passing trouble, and a re-run reads the journal and
                    // AWS's state before it acts, so it is safe to retry (75).
                    throw KilnError(
                        neverSent ? .serviceUnavailable : .temporaryFailure,
                        "\(service.rawValue) \(action): \(error) (after \(attempt) attempts)")
                }
                retryReason = "no answer (\(error.detail))"
            }
            let wait = retry.delay(after: attempt)
            log?.line(
                """
                \(service.rawValue) \(action): \(retryReason); \
                attempt \(attempt + 1) of \(retry.maxAttempts) in \(String(format: "%.2f", wait))s
                """
            )
            retry.sleep(wait)
        }
    }

    /// Both Query error shapes (`<Response><Errors><Error>` from EC2,
    /// `<ErrorResponse><Error>` from the others) and JSON's `__type`.
    static func parseError(_ response: HTTPResponse, service: AWSService, action: String) -> AWSError {
        let headerID = response.header("x-amzn-RequestId") ?? response.header("x-amz-request-id")
        if let root = try? XMLReader.parse(Array(response.body)), let error = root.first(named: "Error") {
            return AWSError(
                service: service.rawValue, action: action,
                code: error.string("Code") ?? "HTTP\(response.status)", message: error.string("Message") ?? "",
                httpStatus: response.status,
                requestID: root.string("RequestID") ?? root.string("RequestId") ?? headerID)
        }
        if let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any],
            let type = object["__type"] as? String
        {
            return AWSError(
                service: service.rawValue, action: action,
                code: String(type.split(separator: "#").last ?? Substring(type)),
                message: (object["message"] ?? object["Message"]) as? String ?? "",
                httpStatus: response.status, requestID: headerID)
        }
        // Not AWS's shape (a proxy's page, moto's HTML 500): keep a short excerpt.
        let excerpt = String(response.text.prefix(200)).replacingOccurrences(of: "\n", with: " ")
        return AWSError(
            service: service.rawValue, action: action, code: "HTTP\(response.status)", message: excerpt,
            httpStatus: response.status, requestID: headerID)
    }
}
