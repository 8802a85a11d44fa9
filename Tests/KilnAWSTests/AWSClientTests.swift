import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import KilnTestSupport
import Testing

/// The client against moto with SigV4 verification on (every call after the
/// stand-in made its IAM user is checked), and through the fault proxy.
@Suite struct AWSClientTests {
    @Test func rightKeysWorkForAllFiveServices() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            let client = makeClient(endpoint: moto.url, credentials: signedUserCredentials(moto))
            let identity = try client.getCallerIdentity()
            #expect(identity.arn == moto["user_arn"] as? String)
            #expect(identity.account == moto["account_id"] as? String)
            let regions = try client.query(.ec2, "DescribeRegions")
            #expect(!(regions["regionInfo"]?.all("item").isEmpty ?? true))
            let groups = try client.query(.autoscaling, "DescribeAutoScalingGroups")
            #expect(groups.first(named: "AutoScalingGroups") != nil)
            let targetGroups = try client.query(.elasticloadbalancing, "DescribeTargetGroups")
            #expect(targetGroups.first(named: "TargetGroups") != nil)
            _ = try client.json(
                .ssm, target: "AmazonSSM.PutParameter",
                ["Name": "/kiln/demo/base/stable", "Value": "ami-123", "Type": "String", "Overwrite": true],
                mutation: .idempotent)
            let parameter = try client.json(.ssm, target: "AmazonSSM.GetParameter", ["Name": "/kiln/demo/base/stable"])
            #expect((parameter["Parameter"] as? [String: Any])?["Value"] as? String == "ami-123")
            #expect(client.calls.snapshot["sts:GetCallerIdentity"] == 1)
        }
    }

    @Test func wrongSecretIsRefusedAsPermissionDeniedWithoutRetries() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            var wrong = signedUserCredentials(moto)
            wrong.secretAccessKey = String(wrong.secretAccessKey.reversed())
            for (service, action) in [
                (AWSService.sts, "GetCallerIdentity"), (.autoscaling, "DescribeAutoScalingGroups"),
                (.ec2, "DescribeRegions"),
            ] {
                let client = makeClient(endpoint: moto.url, credentials: wrong)
                do {
                    _ = try client.query(service, action)
                    Issue.record("\(service) accepted a wrong secret")
                } catch let error as AWSError {
                    #expect(
                        ["SignatureDoesNotMatch", "AuthFailure", "InvalidClientTokenId"].contains(error.code),
                        "\(error)")
                    #expect(error.exitStatus == .permissionDenied)
                    #expect(KilnExit.for(error) == 77)
                    #expect(!error.description.contains(wrong.secretAccessKey))
                }
                #expect(client.calls.total == 1, "no retry after an authentication error")
            }
        }
    }

    @Test func sessionTokensAreCarried() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            let client = makeClient(endpoint: moto.url, credentials: signedUserCredentials(moto))
            let temporary = try client.assumeRole(
                roleARN: "arn:aws:iam::\(moto["account_id"] as? String ?? ""):role/kiln-deploy",
                sessionName: "kiln-test")
            #expect(temporary.sessionToken?.isEmpty == false)
            #expect(temporary.expiration != nil)
            let asRole = makeClient(endpoint: moto.url, credentials: temporary)
            let identity = try asRole.getCallerIdentity()
            #expect(identity.arn.contains("assumed-role/kiln-deploy/kiln-test"))
            // Without its session token the temporary key is refused.
            var stripped = temporary
            stripped.sessionToken = nil
            #expect(
                expectExit(.permissionDenied) {
                    _ = try makeClient(endpoint: moto.url, credentials: stripped).getCallerIdentity()
                } == nil)
        }
    }

    /// Through the fault proxy: 30% throttling, 5% 5xx, 2% dropped
    /// connections. A hundred mixed calls all complete, and each mutating
    /// call reached moto exactly once (faults are injected before forwarding).
    @Test func hundredMixedCallsCompleteThroughFaultsAndNoMutationLandsTwice() throws {
        try withStandIn("moto") { moto in
            let world = try StandIn.runOnce("world", ["--endpoint", moto.url, "--environments", "test"])
            let ami = try #require((world["app_ami_id"] as? [String: Any])?["value"] as? String)
            let asg = try #require((world["test_asg_name"] as? [String: Any])?["value"] as? String)
            try withStandIn(
                "faults",
                ["--upstream", moto.url, "--throttle", "0.3", "--error5xx", "0.05", "--drop", "0.02", "--seed", "7"]
            ) { proxy in
                let client = makeClient(
                    endpoint: proxy.url, retry: RetryPolicy(maxAttempts: 12, baseDelay: 0.002, maxDelay: 0.02))
                var mutations: [String: Int] = [:]
                for index in 0..<100 {
                    switch index % 5 {
                    case 0:
                        var parameters = QueryParameters()
                        parameters.addList("ResourceId", [ami])
                        parameters.addKeyValues("Tag", [("kiln:round", String(index))])
                        _ = try client.query(.ec2, "CreateTags", parameters, mutation: .idempotent)
                        mutations["ec2:CreateTags", default: 0] += 1
                    case 1:
                        var parameters = QueryParameters()
                        parameters.addList("ImageId", [ami])
                        let images = try client.query(.ec2, "DescribeImages", parameters)
                        #expect(images.first(named: "imageId")?.text == ami)
                    case 2:
                        var parameters = QueryParameters()
                        parameters.addList("AutoScalingGroupNames.member", [asg])
                        _ = try client.query(.autoscaling, "DescribeAutoScalingGroups", parameters)
                    case 3:
                        _ = try client.json(
                            .ssm, target: "AmazonSSM.PutParameter",
                            ["Name": "/kiln/round", "Value": String(index), "Type": "String", "Overwrite": true],
                            mutation: .idempotent)
                        mutations["ssm:PutParameter", default: 0] += 1
                    default:
                        _ = try client.getCallerIdentity()
                    }
                }
                let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
                #expect(proxyCount(stats, "forwarded", "ec2", "CreateTags") == mutations["ec2:CreateTags"])
                #expect(proxyCount(stats, "forwarded", "ssm", "PutParameter") == mutations["ssm:PutParameter"])
                let throttled = (stats["faults"] as? [String: Any])?["throttle"] as? [String: Any] ?? [:]
                #expect(!throttled.isEmpty, "the proxy did throttle")
                #expect(client.calls.total > 100, "retries were needed and made")
                // Moto holds the last values written.
                let direct = makeClient(endpoint: moto.url)
                let parameter = try direct.json(.ssm, target: "AmazonSSM.GetParameter", ["Name": "/kiln/round"])
                #expect((parameter["Parameter"] as? [String: Any])?["Value"] as? String == "98")
                #expect((parameter["Parameter"] as? [String: Any])?["Version"] as? Int == mutations["ssm:PutParameter"])
            }
        }
    }

    @Test func aOnceOnlyCallIsNotResentAfterADroppedConnection() throws {
        try withStandIn("moto") { moto in
            try withStandIn("faults", ["--upstream", moto.url, "--drop", "1.0"]) { proxy in
                let client = makeClient(endpoint: proxy.url)
                do {
                    _ = try client.json(
                        .ssm, target: "AmazonSSM.PutParameter", ["Name": "/kiln/once", "Value": "v", "Type": "String"],
                        mutation: .once)
                    Issue.record("expected an unknown outcome")
                } catch let error as AWSUnknownOutcome {
                    #expect(KilnExit.for(error) == 75)
                    #expect(error.description.contains("PutParameter"))
                }
                #expect(client.calls.total == 1)
                let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
                #expect(proxyCount(stats, "calls", "ssm", "PutParameter") == 1)
            }
        }
    }

    @Test func throttlingPastTheLimitIsATemporaryFailure() throws {
        try withStandIn("moto") { moto in
            try withStandIn("faults", ["--upstream", moto.url, "--throttle", "1.0"]) { proxy in
                let client = makeClient(
                    endpoint: proxy.url, retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.001))
                do {
                    _ = try client.query(.ec2, "DescribeRegions")
                    Issue.record("expected throttling")
                } catch let error as AWSError {
                    #expect(error.code == "RequestLimitExceeded")
                    #expect(error.httpStatus == 503)
                    #expect(error.requestID?.isEmpty == false)
                    #expect(KilnExit.for(error) == 75)
                }
                #expect(client.calls.total == 3)
            }
        }
    }

    @Test func backoffIsJitteredExponentialWithACap() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: 0.1, maxDelay: 2, random: { $0.upperBound })
        #expect((1...7).map { policy.delay(after: $0) } == [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2])
        let jittered = RetryPolicy(baseDelay: 0.1, maxDelay: 2)
        #expect((0..<50).allSatisfy { _ in (0...0.4).contains(jittered.delay(after: 3)) })
    }

    @Test func bothErrorShapesAndJSONAreDecoded() throws {
        try withStandIn("moto") { moto in
            let client = makeClient(endpoint: moto.url)
            // EC2: <Response><Errors><Error>
            var parameters = QueryParameters()
            parameters.addList("ImageId", ["ami-00000000000000000"])
            do {
                _ = try client.query(.ec2, "DescribeImages", parameters)
                Issue.record("expected InvalidAMIID")
            } catch let error as AWSError {
                #expect(error.code.hasPrefix("InvalidAMIID"))
                #expect(error.httpStatus == 400)
                #expect(error.requestID != nil)
                #expect(KilnExit.for(error) == 69)
            }
            // Auto Scaling: <ErrorResponse><Error>
            var update = QueryParameters()
            update.add("AutoScalingGroupName", "no-such-group")
            update.add("MinSize", 1)
            do {
                _ = try client.query(.autoscaling, "UpdateAutoScalingGroup", update, mutation: .idempotent)
                Issue.record("expected an error for a missing group")
            } catch let error as AWSError {
                #expect(error.code == "ValidationError")
                #expect(!error.message.isEmpty)
            }
            // SSM: JSON __type
            do {
                _ = try client.json(.ssm, target: "AmazonSSM.GetParameter", ["Name": "/kiln/none"])
                Issue.record("expected ParameterNotFound")
            } catch let error as AWSError {
                #expect(error.code == "ParameterNotFound")
            }
        }
    }

    @Test func malformedAnswerIsAClearError() throws {
        try withStandIn("http-fixture") { fixture in
            // The fixture answers 200 with JSON where XML is expected.
            let client = makeClient(endpoint: fixture.url + "/echo")
            do {
                _ = try client.query(.ec2, "DescribeRegions")
                Issue.record("expected a malformed-answer error")
            } catch let error as AWSMalformedResponse {
                #expect(error.description.contains("DescribeRegions"))
                #expect(KilnExit.for(error) == 69)
            }
        }
    }

    @Test func unreachableEndpointIsServiceUnavailableAfterRetries() throws {
        let client = makeClient(
            endpoint: "http://127.0.0.1:9", retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.001, maxDelay: 0.001))
        #expect(expectExit(.serviceUnavailable) { _ = try client.query(.ec2, "DescribeRegions") } == nil)
        #expect(client.calls.total == 2)
    }

    @Test func endpointsFollowTheEnvironment() {
        let job = JobContext(environment: [
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000/", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:6000",
        ])
        let endpoints = AWSEndpoints(region: "eu-west-1", job: job)
        #expect(endpoints.url(for: .ec2) == "http://127.0.0.1:5000")
        #expect(endpoints.url(for: .sts) == "http://127.0.0.1:6000")
        let standard = AWSEndpoints(region: "eu-west-1", job: JobContext(environment: [:]))
        #expect(standard.url(for: .autoscaling) == "https://autoscaling.eu-west-1.amazonaws.com")
        #expect(standard.url(for: .elasticloadbalancing) == "https://elasticloadbalancing.eu-west-1.amazonaws.com")
        let perService = AWSEndpoints(
            region: "us-east-1",
            job: JobContext(environment: ["AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2": "http://127.0.0.1:7000"]))
        #expect(perService.url(for: .elasticloadbalancing) == "http://127.0.0.1:7000")
        #expect(perService.url(for: .ec2) == "https://ec2.us-east-1.amazonaws.com")
    }
}

/// Issue 13, item 7: one rule for a connection that fails after the request
/// left. A call whose effect is unknown is exit 75 (the re-run reads AWS's
/// state first); an idempotent call (SetDesiredCapacity sets an absolute
/// size) is sent again, once per attempt of the retry policy and no more;
/// a `.once` call is sent exactly once. Before, the idempotent case ended in
/// 69, which GitLab's `retry: exit_codes: [75]` never retries.
@Suite struct UnknownEffectTests {
    @Test func anIdempotentCallDroppedOnEveryAttemptIsATemporaryFailureAfterExactlyTheAttempts() throws {
        try withStandIn("moto") { moto in
            try withStandIn(
                "faults", ["--upstream", moto.url, "--drop", "1.0", "--only-actions", "SetDesiredCapacity"]
            ) {
                proxy in
                let client = makeClient(
                    endpoint: proxy.url, retry: RetryPolicy(maxAttempts: 4, baseDelay: 0.001, maxDelay: 0.002))
                do {
                    try client.setDesiredCapacity("any-group", 3)
                    Issue.record("expected a failure")
                } catch {
                    #expect(KilnExit.for(error) == 75, "\(error)")
                }
                let stats = try fetchJSON(proxy.url + "/__kiln_faults/stats")
                #expect(proxyCount(stats, "calls", "autoscaling", "SetDesiredCapacity") == 4, "one send per attempt")
            }
        }
    }

    @Test func aRefusedConnectionOnEveryAttemptIsAnUnreachableService() throws {
        // A loopback port nothing listens on: refused at once, nothing sent.
        let client = makeClient(
            endpoint: "http://127.0.0.1:9", retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.001, maxDelay: 0.002))
        do {
            try client.setDesiredCapacity("any-group", 3)
            Issue.record("expected a failure")
        } catch {
            #expect(KilnExit.for(error) == 69, "\(error)")
        }
        #expect(client.calls.total == 2)
    }
}

/// Issue 13, item 10: a region or endpoint that cannot be right is a bad
/// configuration at once (78, naming the variable), not retried as an outage.
@Suite struct AWSConfigurationTests {
    let http = HTTPClient(settings: HTTPSettings())

    @Test(arguments: [
        ["AWS_REGION": "not_a_region"], ["AWS_REGION": "us east 1"], ["AWS_DEFAULT_REGION": "EU-WEST-1"],
        ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "not a url"],
        ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "ftp://127.0.0.1/"],
        ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_EC2": "http://"],
    ])
    func aBadRegionOrEndpointIsABadConfigurationNamingTheVariable(environment: [String: String]) {
        let job = JobContext(environment: environment.merging(["AWS_EC2_METADATA_DISABLED": "true"]) { $1 })
        do {
            _ = try AWSEnvironment(job: job, http: http)
            Issue.record("\(environment) was accepted")
        } catch let error as KilnError {
            #expect(error.exitStatus == .badConfiguration)
            let named = environment.keys.filter { $0.hasPrefix("AWS_ENDPOINT") || environment.count == 1 }
            #expect(named.allSatisfy { error.message.contains($0) }, "\(error.message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test(arguments: ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "ap-southeast-5"])
    func realRegionsPass(region: String) throws {
        #expect(AWSEndpoints.isRegion(region))
        _ = try AWSEnvironment(job: JobContext(environment: ["AWS_REGION": region]), http: http)
    }
}
