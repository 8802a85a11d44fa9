import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// Each credential source, in a temporary home, with every other source off.
@Suite struct CredentialTests {
    let http = HTTPClient(settings: HTTPSettings())

    /// A job environment with no credentials anywhere but what the test adds.
    func environment(_ home: TemporaryDirectory, _ extra: [String: String]) -> JobContext {
        var values = ["HOME": home.path, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"]
        values.merge(extra) { $1 }
        return JobContext(environment: values)
    }

    func chain(
        _ job: JobContext, secrets: SecretMask? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) throws -> CredentialChain {
        try AWSEnvironment(job: job, http: http, secrets: secrets, clock: Clock(now: now, sleep: { _ in })).credentials
    }

    @Test func environmentComesFirst() throws {
        let home = TemporaryDirectory()
        try "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = file-secret\n".write(
            toFile: home.file("credentials"), atomically: true, encoding: .utf8)
        let secrets = SecretMask()
        let resolved = try chain(
            environment(
                home,
                [
                    "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret",
                    "AWS_SESSION_TOKEN": "env-token",
                    "AWS_SHARED_CREDENTIALS_FILE": home.file("credentials"),
                ]), secrets: secrets
        ).resolved()
        #expect(
            resolved.credentials
                == AWSCredentials(accessKeyID: "AKIAENV", secretAccessKey: "env-secret", sessionToken: "env-token"))
        #expect(resolved.source.hasPrefix("environment"))
        #expect(secrets.mask("env-secret env-token") == "[MASKED] [MASKED]")
    }

    @Test func halfSetEnvironmentIsPermissionDenied() throws {
        let home = TemporaryDirectory()
        #expect(
            expectExit(.permissionDenied) {
                _ = try chain(environment(home, ["AWS_ACCESS_KEY_ID": "AKIAENV"])).credentials()
            } == nil)
    }

    @Test func nothingAnywhereIsPermissionDeniedSayingWhereItLooked() throws {
        let home = TemporaryDirectory()
        do {
            _ = try chain(environment(home, [:])).credentials()
            Issue.record("expected no credentials")
        } catch let error as KilnError {
            #expect(error.exitStatus == .permissionDenied)
            #expect(error.message.contains("AWS_ROLE_ARN"))
        }
    }

    @Test func profileFilesInAHome() throws {
        let home = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: home.file(".aws"), withIntermediateDirectories: true)
        try """
        [default]
        aws_access_key_id = AKIADEFAULT
        aws_secret_access_key = default-secret
        [ci]
        aws_access_key_id = AKIACI
        aws_secret_access_key = ci-secret
        aws_session_token = ci-token
        """.write(toFile: home.file(".aws/credentials"), atomically: true, encoding: .utf8)
        try "[profile ci]\nregion = eu-central-1\n".write(
            toFile: home.file(".aws/config"), atomically: true, encoding: .utf8)
        let fromDefault = try chain(environment(home, [:])).resolved()
        #expect(fromDefault.credentials.accessKeyID == "AKIADEFAULT")
        // AWS_PROFILE picks the profile, and its region applies when AWS_REGION is unset.
        let job = JobContext(environment: ["HOME": home.path, "AWS_PROFILE": "ci", "AWS_EC2_METADATA_DISABLED": "true"])
        let aws = try AWSEnvironment(job: job, http: http)
        #expect(aws.region == "eu-central-1")
        let fromCI = try aws.credentials.resolved()
        #expect(
            fromCI.credentials
                == AWSCredentials(accessKeyID: "AKIACI", secretAccessKey: "ci-secret", sessionToken: "ci-token"))
        #expect(fromCI.source.contains("profile ci"))
        // A named profile that does not exist is an error, not a fall-through.
        let missing = environment(home, ["AWS_PROFILE": "nope"])
        #expect(expectExit(.permissionDenied) { _ = try chain(missing).credentials() } == nil)
    }

    @Test func profileRoleThroughSourceProfileAgainstMotoSTS() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            let home = TemporaryDirectory()
            let account = moto["account_id"] as? String ?? ""
            try """
            [base]
            aws_access_key_id = \(moto["access_key_id"] as? String ?? "")
            aws_secret_access_key = \(moto["secret_access_key"] as? String ?? "")
            """.write(toFile: home.file("credentials"), atomically: true, encoding: .utf8)
            try """
            [profile deploy]
            role_arn = arn:aws:iam::\(account):role/kiln-deploy
            source_profile = base
            role_session_name = kiln-by-profile
            """.write(toFile: home.file("config"), atomically: true, encoding: .utf8)
            let job = environment(
                home,
                [
                    "AWS_PROFILE": "deploy", "AWS_SHARED_CREDENTIALS_FILE": home.file("credentials"),
                    "AWS_CONFIG_FILE": home.file("config"), "AWS_ENDPOINT_URL": moto.url,
                ])
            let aws = try AWSEnvironment(job: job, http: http)
            let chain = aws.credentials
            let resolved = try chain.resolved()
            #expect(resolved.credentials.sessionToken != nil)
            #expect(resolved.source.contains("role arn:aws:iam::\(account):role/kiln-deploy"))
            let client = AWSClient(endpoints: aws.endpoints, credentials: chain, http: http)
            #expect(try client.getCallerIdentity().arn.contains("assumed-role/kiln-deploy/kiln-by-profile"))
        }
    }

    @Test func webIdentityFromATokenFileAndFromAGitLabIDToken() throws {
        try withStandIn("moto") { moto in
            let home = TemporaryDirectory()
            try "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6ZyJ9.c2ln\n".write(
                toFile: home.file("token"), atomically: true, encoding: .utf8)
            let base = [
                "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gitlab-deployer", "AWS_ENDPOINT_URL": moto.url,
                "CI_PROJECT_PATH": "group/app", "CI_PIPELINE_ID": "4242", "CI_JOB_ID": "99",
            ]
            var fromFile = base
            fromFile["AWS_WEB_IDENTITY_TOKEN_FILE"] = home.file("token")
            let secrets = SecretMask()
            let job = environment(home, fromFile)
            let aws = try AWSEnvironment(job: job, http: http, secrets: secrets)
            let webIdentity = aws.credentials
            let resolved = try webIdentity.resolved()
            #expect(resolved.source.contains("web identity"))
            #expect(resolved.source.contains("session kiln-group.app-p4242-j99"))
            let identity = try AWSClient(endpoints: aws.endpoints, credentials: webIdentity, http: http)
                .getCallerIdentity()
            #expect(identity.arn.contains("assumed-role/gitlab-deployer/kiln-group.app-p4242-j99"))
            #expect(secrets.mask(resolved.credentials.secretAccessKey) == "[MASKED]")

            var fromVariable = base
            fromVariable["KILN_OIDC_TOKEN_VARIABLE"] = "GITLAB_OIDC_TOKEN"
            fromVariable["GITLAB_OIDC_TOKEN"] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
            fromVariable["AWS_ROLE_SESSION_NAME"] = "by hand"
            let viaVariable = try chain(environment(home, fromVariable)).resolved()
            #expect(viaVariable.source.contains("token from $GITLAB_OIDC_TOKEN"))
            #expect(viaVariable.source.contains("session by-hand"))
            #expect(!viaVariable.source.contains("eyJ"))

            var unset = base
            unset["KILN_OIDC_TOKEN_VARIABLE"] = "MISSING_TOKEN"
            #expect(expectExit(.permissionDenied) { _ = try chain(environment(home, unset)).credentials() } == nil)
        }
    }

    @Test func instanceMetadataV2ThroughALoopbackFakeThatDemandsTheToken() throws {
        try withStandIn("imds") { imds in
            let home = TemporaryDirectory()
            let job = environment(
                home, ["AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url])
            let resolved = try chain(job).resolved()
            #expect(resolved.credentials.accessKeyID == "ASIAKILNFAKE0001")
            #expect(resolved.credentials.sessionToken == "fake-session-1")
            #expect(resolved.credentials.expiration != nil)
            #expect(resolved.source == "instance metadata (role kiln-role)")
            let stats = try fetchJSON(imds.url + "/__kiln_imds/stats")
            #expect(stats["tokens"] as? Int == 1)
            #expect(stats["rejected"] as? Int == 0)
        }
    }

    @Test func instanceMetadataDisabledIsNeverAsked() throws {
        try withStandIn("imds") { imds in
            let home = TemporaryDirectory()
            let job = environment(
                home, ["AWS_EC2_METADATA_DISABLED": "true", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url])
            #expect(expectExit(.permissionDenied) { _ = try chain(job).credentials() } == nil)
            let stats = try fetchJSON(imds.url + "/__kiln_imds/stats")
            #expect(stats["tokens"] as? Int == 0)
        }
    }

    @Test func containerCredentialsWithAnAuthorizationToken() throws {
        try withStandIn("imds", ["--auth-token", "container-auth"]) { fake in
            let home = TemporaryDirectory()
            let job = environment(
                home,
                [
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/ecs/credentials",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-auth",
                ])
            let resolved = try chain(job).resolved()
            #expect(resolved.credentials.accessKeyID == "ASIAKILNFAKE0001")
            #expect(resolved.source.hasPrefix("container"))
            let wrong = environment(
                home,
                [
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": fake.url + "/ecs/credentials",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong",
                ])
            #expect(expectExit(.permissionDenied) { _ = try chain(wrong).credentials() } == nil)
        }
    }

    /// Temporary credentials are fetched again five minutes before they
    /// expire, by one caller: the others are served the still-valid ones
    /// meanwhile (issue 12 changed this: they used to wait for the refresh).
    @Test func refreshBeforeExpiryOneAtATime() throws {
        try withStandIn("imds", ["--expires-in", "600"]) { imds in
            let home = TemporaryDirectory()
            let job = environment(
                home, ["AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url])
            let clock = ShiftedClock()
            let metadata = try chain(job, now: { clock.now })
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001")
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001", "cached while far from expiry")
            clock.shift(by: 400)  // 200 s left: inside the 300 s margin
            let keys = ConcurrentResults()
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                keys.append((try? metadata.credentials().accessKeyID) ?? "error")
            }
            #expect(keys.values.count == 8)
            #expect(keys.values.allSatisfy { $0 == "ASIAKILNFAKE0001" || $0 == "ASIAKILNFAKE0002" }, "\(keys.values)")
            #expect(keys.values.contains("ASIAKILNFAKE0002"), "the refreshing caller gets the new ones")
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0002")
            #expect(try fetchJSON(imds.url + "/__kiln_imds/stats")["credentials"] as? Int == 2)
            #expect(metadata.refreshes == 1)
        }
    }

    /// While one caller waits for a slow refresh, another is served the
    /// credentials that are still valid at once (the lock is not held
    /// across the IMDS call).
    @Test func aSlowRefreshDoesNotHoldUpOtherCallers() throws {
        try withStandIn("imds", ["--expires-in", "600", "--refresh-delay", "1.0"]) { imds in
            let home = TemporaryDirectory()
            let job = environment(
                home, ["AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url])
            let clock = ShiftedClock()
            let metadata = try chain(job, now: { clock.now })
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001")
            clock.shift(by: 400)  // inside the margin, still valid
            let refresher = ConcurrentResults()
            let finished = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                refresher.append((try? metadata.credentials().accessKeyID) ?? "error")
                finished.signal()
            }
            usleep(300_000)  // the refresh is now waiting on the slow answer
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001", "served the valid ones meanwhile")
            finished.wait()
            #expect(refresher.values == ["ASIAKILNFAKE0002"])
            #expect(metadata.refreshes == 1)
        }
    }

    /// A refresh that fails while the credentials are still valid is not
    /// tried again at every call (it was, before: a broken metadata service
    /// got one request per AWS call): the next attempt waits 30 s, or half
    /// the time left when that is less.
    @Test func aFailedRefreshIsTriedAgainOnlyAfterAPause() throws {
        try withStandIn("imds", ["--expires-in", "600", "--fail-refresh"]) { imds in
            let home = TemporaryDirectory()
            let job = environment(
                home, ["AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url])
            let clock = ShiftedClock()
            let metadata = try chain(job, now: { clock.now })
            func asked() throws -> Int { try fetchJSON(imds.url + "/__kiln_imds/stats")["credentials"] as? Int ?? -1 }
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001")
            #expect(try asked() == 1)
            clock.shift(by: 400)  // 200 s left: inside the 300 s margin, so a refresh is due
            for _ in 0..<20 { #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001") }
            let afterFirstFailure = try asked()
            #expect(afterFirstFailure > 1, "the refresh was tried")
            clock.shift(by: 10)
            for _ in 0..<20 { #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001") }
            #expect(try asked() == afterFirstFailure, "no new attempt within 30 s of the failure")
            clock.shift(by: 25)
            #expect(try metadata.credentials().accessKeyID == "ASIAKILNFAKE0001")
            #expect(try asked() > afterFirstFailure, "tried again once the pause is over")
            #expect(metadata.refreshes == 0)
        }
    }
}

final class ShiftedClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0
    var now: Date { lock.withLock { Date().addingTimeInterval(offset) } }
    func shift(by seconds: TimeInterval) { lock.withLock { offset += seconds } }
}

final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ value: String) { lock.withLock { items.append(value) } }
    var values: [String] { lock.withLock { items } }
}

@Suite struct RetrySettingTests {
    @Test func maxAttemptsComesFromTheSDKsVariable() throws {
        let http = HTTPClient(settings: HTTPSettings())
        let set = try AWSEnvironment(
            job: JobContext(environment: ["AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "3"]), http: http)
        #expect(set.retry.maxAttempts == 3)
        let unset = try AWSEnvironment(job: JobContext(environment: ["AWS_REGION": "us-east-1"]), http: http)
        #expect(unset.retry.maxAttempts == 8)
        let bad = JobContext(environment: ["AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "lots"])
        #expect(expectExit(.badConfiguration) { _ = try AWSEnvironment(job: bad, http: http) } == nil)
    }
}
