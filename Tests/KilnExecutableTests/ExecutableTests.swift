import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Runs a built stage binary the way a job would, and keeps what it printed.
func runBinary(
    _ name: String, _ arguments: [String], environment: [String: String] = [:]
) throws -> (ProcessResult, String) {
    var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { $1 }
    let run = try runProduct(name, arguments, environment: env)
    return (run.result, run.output)
}

let stages = ["kiln-checkout", "kiln-build", "kiln-bake", "kiln-userdata", "kiln-rotate"]

@Suite struct ExecutableTests {
    @Test(arguments: stages)
    func helpExitsZero(stage: String) throws {
        let (result, output) = try runBinary(stage, ["--help"])
        #expect(result.termination == .exited(0))
        #expect(output.contains("USAGE: \(stage)"))
        // kiln-rotate has subcommands (deploy, resume, plan, rollback): its
        // common options show in each subcommand's help.
        let (_, detail) = stage == "kiln-rotate" ? try runBinary(stage, ["deploy", "--help"]) : (result, output)
        #expect(detail.contains("--artifacts-dir"))
    }

    @Test(arguments: stages)
    func versionExitsZero(stage: String) throws {
        let (result, output) = try runBinary(stage, ["--version"])
        #expect(result.termination == .exited(0))
        #expect(output == Kiln.version + "\n")
    }

    @Test(arguments: stages)
    func badFlagIsExit64WithAUsageLine(stage: String) throws {
        let (result, output) = try runBinary(stage, ["--no-such-flag"])
        #expect(result.termination == .exited(64))
        #expect(output.contains("Usage: \(stage)"))
        #expect(output.contains("--no-such-flag"))
    }

    @Test func checkoutWithoutARepositoryIsABadConfiguration() throws {
        let folder = TemporaryDirectory()
        let (result, output) = try runBinary(
            "kiln-checkout", [],
            environment: ["CI_PROJECT_DIR": folder.path, "CI_COMMIT_SHA": String(repeating: "a", count: 40)])
        #expect(result.termination == .exited(78))
        #expect(output.contains("CI_REPOSITORY_URL"))
    }

    @Test func badConfigurationFileIsExit78WithItsLine() throws {
        let folder = TemporaryDirectory()
        try "build:\n  test: [unclosed\n".write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        let (result, output) = try runBinary("kiln-build", [], environment: ["CI_PROJECT_DIR": folder.path])
        #expect(result.termination == .exited(78))
        #expect(output.contains("kiln.yml:"))
    }

    @Test func gitLabJobGetsSectionsAndMaskedErrors() throws {
        let folder = TemporaryDirectory()
        let (result, output) = try runBinary(
            "kiln-build", ["--config", folder.file("missing-glcbt-secret.yml")],
            environment: [
                "GITLAB_CI": "true", "CI_JOB_TOKEN": "glcbt-secret", "CI_PROJECT_DIR": folder.path,
            ])
        #expect(result.termination == .exited(78))
        #expect(!output.contains("glcbt-secret"))
        #expect(output.contains("missing-[MASKED].yml"))
    }
}

/// `--check-aws` on a built binary, against moto with signature checking.
@Suite struct CheckAWSTests {
    @Test func printsAccountARNAndSourceThenExitsZero() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            let secret = moto["secret_access_key"] as? String ?? ""
            let (result, output) = try runBinary(
                "kiln-bake", ["--check-aws"],
                environment: [
                    "AWS_ACCESS_KEY_ID": moto["access_key_id"] as? String ?? "", "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
                ])
            #expect(result.termination == .exited(0), "\(output)")
            #expect(output.contains("account: \(moto["account_id"] as? String ?? "?")"))
            #expect(output.contains("arn: \(moto["user_arn"] as? String ?? "?")"))
            #expect(output.contains("credentials: environment"))
            #expect(!output.contains(secret))
        }
    }

    @Test func wrongSecretIsExit77WithTheReason() throws {
        try withStandIn("moto", ["--signed-user", "kiln"]) { moto in
            let (result, output) = try runBinary(
                "kiln-rotate", ["--check-aws"],
                environment: [
                    "AWS_ACCESS_KEY_ID": moto["access_key_id"] as? String ?? "",
                    "AWS_SECRET_ACCESS_KEY": "not-the-secret-at-all",
                    "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
                ])
            #expect(result.termination == .exited(77), "\(output)")
            #expect(output.contains("GetCallerIdentity"))
            #expect(output.contains("SignatureDoesNotMatch") || output.contains("InvalidClientTokenId"))
            #expect(!output.contains("not-the-secret-at-all"))
        }
    }

    @Test func noRegionIsABadConfiguration() throws {
        let (result, output) = try runBinary(
            "kiln-bake", ["--check-aws"],
            environment: ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_EC2_METADATA_DISABLED": "true"])
        #expect(result.termination == .exited(78))
        #expect(output.contains("AWS_REGION"))
    }

    /// Only the stages that talk to AWS have `--check-aws` (issue 12): the
    /// others do not link the AWS client at all.
    @Test(arguments: ["kiln-checkout", "kiln-build", "kiln-userdata"])
    func stagesWithoutAWSHaveNoCheckAWS(stage: String) throws {
        let (result, output) = try runBinary(stage, ["--check-aws"])
        #expect(result.termination == .exited(64))
        #expect(output.contains("--check-aws"))
    }
}
