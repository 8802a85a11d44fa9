import Foundation
import KilnCore
import KilnHTTP

/// Everything the AWS side of a stage needs, resolved once from the job at
/// the entry point: the region, the endpoints, the retry policy, the HTTP
/// client and one credential chain, shared by every client and every
/// region (a web-identity role is assumed once, not once per region).
public struct AWSEnvironment: Sendable {
    public let region: String
    public let endpoints: AWSEndpoints
    public let http: HTTPClient
    public let retry: RetryPolicy
    public let credentials: CredentialChain
    public let log: LogWriter?
    public let clock: Clock
    /// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, for other regions' endpoints.
    private let job: JobContext

    /// Throws exit 78 for a missing region or a bad `AWS_MAX_ATTEMPTS`.
    public init(
        job: JobContext, http: HTTPClient, secrets: SecretMask? = nil, log: LogWriter? = nil, clock: Clock = .system
    ) throws {
        self.job = job
        self.http = http
        self.log = log
        self.clock = clock
        let home = job["HOME"] ?? NSHomeDirectory()
        let profileName = job["AWS_PROFILE"] ?? job["AWS_DEFAULT_PROFILE"] ?? "default"
        let files = SharedConfigFiles(
            credentialsPath: job["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials",
            configPath: job["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config")
        guard let region = job["AWS_REGION"] ?? job["AWS_DEFAULT_REGION"] ?? files.profile(profileName)?["region"]
        else {
            throw KilnError.badConfiguration(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the profile '\(profileName)')")
        }
        // Checked here, once: a region or endpoint that cannot be right is a
        // bad configuration (78) at once, not eight retries of an outage.
        guard AWSEndpoints.isRegion(region) else {
            let source =
                job["AWS_REGION"] != nil
                ? "AWS_REGION"
                : job["AWS_DEFAULT_REGION"] != nil ? "AWS_DEFAULT_REGION" : "region in profile '\(profileName)'"
            throw KilnError.badConfiguration(
                "\(source): \(Untrusted.quoted(region)) is not an AWS region (such as eu-west-1 or us-gov-west-1)")
        }
        try AWSEndpoints.checkOverrides(job: job)
        self.region = region
        endpoints = AWSEndpoints(region: region, job: job)
        retry = try Self.retryPolicy(job: job, clock: clock)
        // STS for the credential providers: its own few attempts, no log
        // (a credential failure is reported once, by the chain's caller).
        let sts = AWSTransport(
            endpoints: endpoints, http: http, retry: RetryPolicy(maxAttempts: 4, sleep: clock.sleep), clock: clock)
        credentials = CredentialChain(
            providers: [
                EnvironmentCredentialProvider(job: job),
                WebIdentityCredentialProvider(job: job, sts: sts),
                ProfileCredentialProvider(
                    files: files, profile: profileName, explicit: job["AWS_PROFILE"] != nil, sts: sts, job: job),
                ContainerCredentialProvider(job: job, http: http),
                InstanceMetadataCredentialProvider(job: job, http: http),
            ],
            secrets: secrets, log: log, clock: clock)
    }

    /// The retry policy: AWS SDKs' `AWS_MAX_ATTEMPTS` sets the attempts.
    static func retryPolicy(job: JobContext, clock: Clock) throws -> RetryPolicy {
        guard let text = job["AWS_MAX_ATTEMPTS"] else { return RetryPolicy(sleep: clock.sleep) }
        guard let attempts = Int(text), attempts >= 1 else {
            throw KilnError.badConfiguration("AWS_MAX_ATTEMPTS: expected a whole number of 1 or more, got '\(text)'")
        }
        return RetryPolicy(maxAttempts: attempts, sleep: clock.sleep)
    }

    /// A client for the home region, or another one; each counts its own calls.
    public func client(region other: String? = nil) -> AWSClient {
        let endpoints = other.map { AWSEndpoints(region: $0, job: job) } ?? self.endpoints
        return AWSClient(
            transport: AWSTransport(endpoints: endpoints, http: http, retry: retry, log: log, clock: clock),
            credentials: credentials)
    }
}
