import Bake
import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, item 3: Packer (and its plugins) gets the job's environment
/// without the secrets it does not need: no job token (also not inside
/// CI_REPOSITORY_URL), no OIDC token; AWS credentials only as AWS's own
/// variables. Before the fix it got the whole job environment.
@Suite(.serialized) struct PackerEnvironmentTests {
    @Test func packerGetsNoJobTokenAndNoOIDCToken() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            let (run, environment) = try project.bakeRecordingPackerEnvironment([
                "CI_JOB_TOKEN": "glcbt-64_jobtokensecretvalue",
                "CI_REPOSITORY_URL": "http://gitlab-ci-token:glcbt-64_jobtokensecretvalue@127.0.0.1:9/g/demo.git",
                "KILN_OIDC_TOKEN_VARIABLE": "MY_ID_TOKEN", "MY_ID_TOKEN": "eyJoidc.token.value",
                "GITLAB_OIDC_TOKEN": "eyJother.oidc.value", "TEAM_SETTING": "kept",
            ])
            #expect(run.code != 0)
            #expect(!environment.contains("glcbt-64_jobtokensecretvalue"), "the job token reached Packer")
            #expect(!environment.contains("eyJoidc.token.value") && !environment.contains("eyJother.oidc.value"))
            #expect(!environment.contains("CI_REPOSITORY_URL="), "a variable holding the token is left out whole")
            #expect(environment.contains("AWS_ACCESS_KEY_ID=testing"))
            #expect(environment.contains("AWS_SECRET_ACCESS_KEY=testing"), "AWS credentials as AWS's own variables")
            #expect(environment.contains("TEAM_SETTING=kept"), "the rest of the job's environment is kept")
            #expect(!run.output.contains("glcbt-64_jobtokensecretvalue"))
        }
    }
}

/// Issue 18, item 1: `AWS_MAX_ATTEMPTS` is Kiln's retry setting (attempts
/// per AWS request), but Packer's amazon builder reads the same variable as
/// the number of waiter polls (packer issue 8415): a small value made Packer
/// fail with "ResourceNotReady: exceeded wait attempts". Packer gets neither
/// it nor Kiln's own settings; its waiting is the template's `aws_polling`.
@Suite(.serialized) struct PackerSettingsTests {
    @Test func kilnsRetrySettingAndKilnsSettingsDoNotReachPacker() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            let (run, environment) = try project.bakeRecordingPackerEnvironment([
                "AWS_MAX_ATTEMPTS": "2", "AWS_POLL_DELAY_SECONDS": "1", "AWS_TIMEOUT_SECONDS": "5",
                "KILN_INSTANCE_TYPE": "t3.micro", "TEAM_SETTING": "kept",
            ])
            #expect(run.code != 0)
            let lines = Set(environment.split(separator: "\n").map(String.init))
            let names = Set(lines.compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
            #expect(!names.contains("AWS_MAX_ATTEMPTS"), "Kiln's retry setting reached Packer as its waiter polls")
            #expect(!names.contains("AWS_POLL_DELAY_SECONDS") && !names.contains("AWS_TIMEOUT_SECONDS"))
            #expect(!names.contains { $0.hasPrefix("KILN_") }, "Kiln's settings reached Packer: \(names.sorted())")
            #expect(lines.contains("TEAM_SETTING=kept"), "the rest of the job's environment is kept")
            #expect(lines.contains("AWS_REGION=us-east-1"))
        }
    }

    @Test func theShippedTemplateSetsItsOwnWaiting() throws {
        let template = try String(contentsOfFile: "\(TestPaths.repositoryRoot)/packer/kiln.pkr.hcl", encoding: .utf8)
        let polling = try #require(template.range(of: "aws_polling {"), "no aws_polling block")
        let block = template[polling.upperBound...].prefix { $0 != "}" }
        #expect(block.contains("delay_seconds") && block.contains("max_attempts"))
    }
}

/// Issue 13, item 8: a deep TMPDIR made Packer crash (its plugin sockets'
/// paths are limited to 107 bytes) and ended as a bug or an outage; and a
/// `--packer` that does not exist was exit 1 ("start ...: No such file").
@Suite(.serialized) struct PackerUserErrorTests {
    @Test func aDeepTMPDIRStillBakes() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            let deep = project.folder.file(String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60))
            try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
            let run = try project.bake(environment: ["TMPDIR": deep])
            #expect(run.code == 0, "\(run.output)")
            #expect(try project.image()["outcome"] as? String == "baked")
            #expect(!FileManager.default.fileExists(atPath: project.folder.file("packer/crash.log")))
        }
    }

    @Test func aPackerThatDoesNotExistIsABadConfiguration() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            let run = try project.bake(["--packer", "/nonexistent/packer"])
            #expect(run.code == 78, "\(run.output)")
            #expect(run.output.contains("/nonexistent/packer"))
            #expect(run.output.contains("cannot be started"))
        }
    }

    @Test func anArtifactPathThatIsAFolderIsABadArtifact() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            try FileManager.default.createDirectory(
                atPath: project.folder.file("kiln/a-folder"), withIntermediateDirectories: true)
            try rewriteBuild(project) { $0["path"] = "kiln/a-folder" }
            let run = try project.bake()
            #expect(run.code == 65, "\(run.output)")
            #expect(run.output.contains("artifact.path"))
            #expect(run.output.contains("is a folder"))
            #expect(!run.output.contains("NSCocoaErrorDomain"))
        }
    }
}

/// Issue 13, item 2: paths in artifacts stay inside the project.
@Suite(.serialized) struct ArtifactPathTests {
    @Test(arguments: ["/etc/passwd", "../../../../etc/hostname", "kiln/link-out"])
    func anArtifactPathOutsideTheProjectIsABadArtifact(path: String) throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            try? FileManager.default.createSymbolicLink(
                atPath: project.folder.file("kiln/link-out"), withDestinationPath: "/etc/passwd")
            try rewriteBuild(project) { artifact in
                artifact["path"] = path
                artifact["sha256"] = (try? SHA256Digest.hex(ofFileAt: "/etc/passwd")) ?? ""
            }
            let before = try project.kilnImages().count
            let run = try project.bake()
            #expect(run.code == 65, "\(run.output)")
            #expect(run.output.contains("artifact.path"))
            #expect(run.output.contains("is not inside"))
            #expect(try project.kilnImages().count == before, "nothing was baked")
        }
    }
}

/// Changes build.json's artifact in place.
func rewriteBuild(_ project: BakeProject, _ change: (inout [String: Any]) -> Void) throws {
    let path = project.folder.file("kiln/build.json")
    var object =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    var artifact = object["artifact"] as? [String: Any] ?? [:]
    change(&artifact)
    object["artifact"] = artifact
    try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
}

/// Issue 14, item 3: the daily base image is baked daily. Its key holds the
/// pipeline's day (UTC): the same day reuses, the next day bakes again even
/// when Ubuntu published no new image. Before, the key had no day and the
/// scheduled job reused yesterday's image.
@Suite(.serialized) struct BaseImageDayTests {
    @Test func aBaseBakeOnTwoDaysBakesTwiceAndTwiceOnOneDayReuses() throws {
        try withStandIn("moto") { moto in
            let project = try BakeProject(moto: moto, kilnYML: kilnYML())
            project.pinSource = false
            let first = try project.bake(
                ["--role", "base"], environment: ["CI_PIPELINE_CREATED_AT": "2026-12-01T03:30:05Z"])
            #expect(first.code == 0, "\(first.output)")
            let monday = try project.image()
            #expect(monday["outcome"] as? String == "baked")
            #expect(monday["applicationVersion"] as? String == "20261201")

            let again = try project.bake(
                ["--role", "base"], environment: ["CI_PIPELINE_CREATED_AT": "2026-12-01T22:10:00Z"])
            #expect(again.code == 0, "\(again.output)")
            #expect(try project.image()["outcome"] as? String == "reused")
            #expect(try project.image()["amiID"] as? String == monday["amiID"] as? String)

            let next = try project.bake(
                ["--role", "base"], environment: ["CI_PIPELINE_CREATED_AT": "2026-12-02T03:30:05Z"])
            #expect(next.code == 0, "\(next.output)")
            let tuesday = try project.image()
            #expect(tuesday["outcome"] as? String == "baked")
            #expect(tuesday["amiID"] as? String != monday["amiID"] as? String)
            #expect(tuesday["bakeKey"] as? String != monday["bakeKey"] as? String)
            #expect(tuesday["sourceAMI"] as? String == monday["sourceAMI"] as? String, "the same Ubuntu image")
        }
    }

    @Test func theDayIsThePipelinesInUTC() {
        let now = Date(timeIntervalSince1970: 0)
        #expect(BakeDay(pipelineCreatedAt: "2026-12-01T23:59:59-05:00", now: now).text == "2026-12-02")
        #expect(BakeDay(pipelineCreatedAt: nil, now: now).text == "1970-01-01")
        #expect(BakeDay(pipelineCreatedAt: "not a date", now: now).compact == "19700101")
    }
}
