import Foundation
import KilnCore
import KilnHTTP

/// Where credentials came from, for the log (never the keys themselves).
public struct ResolvedCredentials: Sendable {
    public let credentials: AWSCredentials
    public let source: String
}

/// One place credentials may come from. `resolve` returns nil when the
/// source is not set up at all (the chain moves on), and throws when it is
/// set up but fails (the chain stops: a half-configured role is an error,
/// not a reason to fall through to some other identity).
public protocol CredentialProvider: Sendable {
    var name: String { get }
    func resolve() throws -> ResolvedCredentials?
}

/// Credentials in DESIGN.md's order: environment; web identity; shared
/// files; ECS container; EC2 instance metadata v2. The first source that
/// works is cached; temporary credentials are fetched again from that same
/// source five minutes before they expire, one refresh at a time.
public final class CredentialChain: @unchecked Sendable {
    public let providers: [any CredentialProvider]
    public var refreshMargin: TimeInterval = 300
    private let lock = NSLock()
    private var cached: ResolvedCredentials?
    private var cachedProvider: (any CredentialProvider)?
    private let secrets: SecretMask?
    private let log: LogWriter?
    private let now: @Sendable () -> Date
    public private(set) var refreshes = 0

    public init(providers: [any CredentialProvider], secrets: SecretMask? = nil, log: LogWriter? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.providers = providers
        self.secrets = secrets
        self.log = log
        self.now = now
    }

    /// Fixed credentials (tests, and the source profile of an assumed role).
    public static func fixed(_ credentials: AWSCredentials, source: String = "given") -> CredentialChain {
        CredentialChain(providers: [StaticCredentialProvider(resolved: ResolvedCredentials(credentials: credentials, source: source))])
    }

    public func credentials() throws -> AWSCredentials { try resolved().credentials }

    public func resolved() throws -> ResolvedCredentials {
        // The lock makes concurrent callers wait for one refresh, not start their own.
        try lock.withLock {
            if let cached, !expiresSoon(cached.credentials) { return cached }
            let fresh: ResolvedCredentials
            if let provider = cachedProvider, let again = try provider.resolve() {
                fresh = again
                refreshes += 1
                log?.line("aws: refreshed temporary credentials from \(again.source)")
            } else {
                fresh = try firstWorking()
                log?.line("aws: credentials from \(fresh.source)")
            }
            secrets?.add(fresh.credentials.secretAccessKey)
            if let token = fresh.credentials.sessionToken { secrets?.add(token) }
            cached = fresh
            return fresh
        }
    }

    private func expiresSoon(_ credentials: AWSCredentials) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return expiration.timeIntervalSince(now()) < refreshMargin
    }

    private func firstWorking() throws -> ResolvedCredentials {
        for provider in providers {
            if let resolved = try provider.resolve() {
                cachedProvider = provider
                return resolved
            }
        }
        throw KilnError(.permissionDenied, """
            no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), no web identity (AWS_ROLE_ARN with \
            AWS_WEB_IDENTITY_TOKEN_FILE or KILN_OIDC_TOKEN_VARIABLE), no profile in the shared files, no ECS \
            container credentials, and no instance metadata
            """)
    }
}

struct StaticCredentialProvider: CredentialProvider {
    let resolved: ResolvedCredentials
    var name: String { "static" }
    func resolve() throws -> ResolvedCredentials? { resolved }
}

/// Everything the AWS side of a stage needs, resolved once from the job:
/// region, endpoints, the credential chain and the client.
public struct AWSEnvironment: Sendable {
    public let job: JobContext
    public let region: String
    public let endpoints: AWSEndpoints
    public let http: HTTPClient
    let files: SharedConfigFiles
    let profileName: String

    public init(job: JobContext, http: HTTPClient) throws {
        self.job = job
        self.http = http
        let home = job["HOME"] ?? NSHomeDirectory()
        profileName = job["AWS_PROFILE"] ?? job["AWS_DEFAULT_PROFILE"] ?? "default"
        files = SharedConfigFiles(
            credentialsPath: job["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials",
            configPath: job["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config")
        guard let region = job["AWS_REGION"] ?? job["AWS_DEFAULT_REGION"] ?? files.profile(profileName)?["region"] else {
            throw KilnError.badConfiguration(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the profile '\(profileName)')")
        }
        self.region = region
        endpoints = AWSEndpoints(region: region, job: job)
    }

    /// The providers in DESIGN.md's order.
    public func credentialChain(secrets: SecretMask?, log: LogWriter?, now: @escaping @Sendable () -> Date = { Date() }) -> CredentialChain {
        let sts = STSAccess(endpoint: endpoints.url(for: .sts), region: region, http: http, now: now)
        return CredentialChain(
            providers: [
                EnvironmentCredentialProvider(job: job),
                WebIdentityCredentialProvider(job: job, sts: sts),
                ProfileCredentialProvider(files: files, profile: profileName, explicit: job["AWS_PROFILE"] != nil, sts: sts, job: job),
                ContainerCredentialProvider(job: job, http: http),
                InstanceMetadataCredentialProvider(job: job, http: http),
            ],
            secrets: secrets, log: log, now: now)
    }

    /// The retry policy: AWS SDKs' `AWS_MAX_ATTEMPTS` sets the attempts.
    public func retryPolicy() throws -> RetryPolicy {
        guard let text = job["AWS_MAX_ATTEMPTS"] else { return RetryPolicy() }
        guard let attempts = Int(text), attempts >= 1 else {
            throw KilnError.badConfiguration("AWS_MAX_ATTEMPTS: expected a whole number of 1 or more, got '\(text)'")
        }
        return RetryPolicy(maxAttempts: attempts)
    }

    public func client(secrets: SecretMask?, log: LogWriter?) throws -> AWSClient {
        AWSClient(endpoints: endpoints, credentials: credentialChain(secrets: secrets, log: log), http: http, retry: try retryPolicy(), log: log)
    }
}
