import Foundation
import KilnCore
import KilnTestSupport
import Testing

let token = "glcbt-kiln-test-token-0123456789"

/// Runs the built kiln-checkout as a GitLab job would (GIT_STRATEGY: none,
/// everything from CI_* variables) and reads back checkout.json.
struct CheckoutRun {
    let result: ProcessResult
    let output: String
    let project: String
    /// checkout.json as it is now (a later run in the same folder rewrites it).
    var json: [String: Any] {
        guard let data = FileManager.default.contents(atPath: "\(project)/kiln/checkout.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }
    var exitCode: Int32? { if case .exited(let code) = result.termination { return code } else { return nil } }
}

func runCheckout(
    server: StandIn, repository: String = "group/app", project: String, commit: String, ref: String? = "main",
    extra: [String: String] = [:], arguments: [String] = [], jobToken: String? = token
) throws -> CheckoutRun {
    var environment = [
        "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "GITLAB_CI": "true", "CI": "true",
        "CI_PROJECT_DIR": project, "CI_REPOSITORY_URL": "\(server.url)/\(repository).git", "CI_COMMIT_SHA": commit,
        "CI_PIPELINE_ID": "77", "CI_PROJECT_PATH": repository, "GIT_STRATEGY": "none",
    ]
    if let ref { environment["CI_COMMIT_REF_NAME"] = ref }
    if let jobToken { environment["CI_JOB_TOKEN"] = jobToken }
    environment.merge(extra) { $1 }
    let run = try runProduct("kiln-checkout", arguments, environment: environment)
    return CheckoutRun(result: run.result, output: run.output, project: project)
}

/// The git stand-in over the fixture; `faults` go to it as they are (`--stall archive=1000`).
func withGitServer<T>(_ fixture: GitFixture, faults: [String] = [], _ body: (StandIn) throws -> T) throws -> T {
    try withStandIn(
        "git", ["--root", fixture.served, "--user", "gitlab-ci-token", "--password", token] + faults, body)
}

func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

@Suite struct CheckoutCloneTests {
    @Test func cloneKeepsTheArtifactsFolderAndNeverLeaksTheToken() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let first = try fixture.commit(work, ["README.md": "v1\n"], message: "First")
        try fixture.git(["tag", "v1.0.0"], in: work)
        let head = try fixture.commit(
            work, ["README.md": "v2\n", "src/main.c": "int main(void) { return 0; }\n"], message: "Second: add main")
        try fixture.push(work, ["--all"])
        try fixture.push(work, ["--tags"])
        let project = TemporaryDirectory("kiln-project")
        // An earlier job's artifacts, unpacked by GitLab before the script runs.
        try FileManager.default.createDirectory(atPath: project.file("kiln"), withIntermediateDirectories: true)
        try "{\"from\": \"build\"}\n".write(toFile: project.file("kiln/build.json"), atomically: true, encoding: .utf8)

        try withGitServer(fixture) { server in
            let run = try runCheckout(
                server: server, project: project.path, commit: head, extra: ["KILN_GIT_STRATEGY": "clone"])
            #expect(run.exitCode == 0, "\(run.output)")
            #expect(read(project.file("README.md")) == "v2\n")
            #expect(read(project.file("src/main.c")) != nil)
            #expect(read(project.file("kiln/build.json")) == "{\"from\": \"build\"}\n", "earlier artifacts kept")
            let json = run.json
            #expect(json["schema"] as? String == "kiln.checkout")
            #expect(json["commit"] as? String == head)
            #expect(json["shortCommit"] as? String == String(head.prefix(8)))
            #expect(json["versionString"] as? String == "v1.0.0-1-g\(head.prefix(7))")
            #expect(json["subject"] as? String == "Second: add main")
            #expect(json["strategy"] as? String == "clone")
            #expect((json["bytesReceived"] as? Int ?? 0) > 0)
            #expect(json["repository"] as? String == "\(server.url)/group/app.git")
            #expect(
                read(project.file("kiln/checkout.env"))
                    == "KILN_COMMIT=\(head)\nKILN_VERSION=v1.0.0-1-g\(head.prefix(7))\n")
            #expect(GitLabDotenv.violations(read(project.file("kiln/checkout.env")) ?? "x") == [])
            #expect(run.output.contains("section_start:"), "GitLab sections in a job")

            // The token is nowhere: not printed, not in .git, not in the artifact.
            #expect(!run.output.contains(token))
            #expect(!(read(project.file(".git/config")) ?? "").contains(token))
            #expect(!(read(project.file("kiln/checkout.json")) ?? "").contains(token))
            let gitFiles = FileManager.default.enumerator(atPath: project.file(".git"))?.allObjects as? [String] ?? []
            for file in gitFiles where !file.hasPrefix("objects/") {
                #expect(!(read(project.file(".git/\(file)")) ?? "").contains(token), ".git/\(file)")
            }
            _ = first
        }
    }

    @Test func tokenInsideTheRepositoryURLIsTakenOutAndUsed() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let head = try fixture.commit(work, ["a.txt": "a\n"], message: "Only")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let withToken = server.url.replacingOccurrences(of: "http://", with: "http://gitlab-ci-token:\(token)@")
            let run = try runCheckout(
                server: server, project: project.path, commit: head,
                extra: ["CI_REPOSITORY_URL": "\(withToken)/group/app.git"], jobToken: nil)
            #expect(run.exitCode == 0, "\(run.output)")
            #expect(!run.output.contains(token))
            #expect(!(read(project.file(".git/config")) ?? "").contains(token))
            #expect(!(read(project.file("kiln/checkout.json")) ?? "").contains(token))
            #expect(run.json["repository"] as? String == "\(server.url)/group/app.git")
        }
    }

    @Test func olderCommitTagAndPipelineOnlyCommit() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let older = try fixture.commit(work, ["f.txt": "1\n"], message: "One")
        let tagged = try fixture.commit(work, ["f.txt": "2\n"], message: "Two")
        try fixture.git(["tag", "-a", "v2.0.0", "-m", "release 2"], in: work)
        _ = try fixture.commit(work, ["f.txt": "3\n"], message: "Three")
        // A merge-request style commit that only refs/pipelines/<id> reaches.
        try fixture.git(["checkout", "-q", "-b", "scratch"], in: work)
        let pipelineOnly = try fixture.commit(work, ["f.txt": "pipeline\n"], message: "Pipeline only")
        try fixture.push(work, ["main", "--tags"])
        try fixture.push(work, ["scratch:refs/pipelines/77"])

        try withGitServer(fixture) { server in
            let atOlder = TemporaryDirectory("kiln-project")
            let run = try runCheckout(server: server, project: atOlder.path, commit: older)
            #expect(run.exitCode == 0, "\(run.output)")
            #expect(read(atOlder.file("f.txt")) == "1\n")
            #expect(
                run.json["versionString"] as? String == String(older.prefix(8)), "no tag reaches it: the short commit")

            let atTag = TemporaryDirectory("kiln-project")
            let tagRun = try runCheckout(
                server: server, project: atTag.path, commit: tagged, ref: "v2.0.0", extra: ["CI_COMMIT_TAG": "v2.0.0"])
            #expect(tagRun.exitCode == 0, "\(tagRun.output)")
            #expect(read(atTag.file("f.txt")) == "2\n")
            #expect(tagRun.json["versionString"] as? String == "v2.0.0")
            #expect(tagRun.json["tag"] as? String == "v2.0.0")

            let atPipeline = TemporaryDirectory("kiln-project")
            let pipelineRun = try runCheckout(
                server: server, project: atPipeline.path, commit: pipelineOnly, ref: "feature")
            #expect(pipelineRun.exitCode == 0, "\(pipelineRun.output)")
            #expect(read(atPipeline.file("f.txt")) == "pipeline\n")
        }
    }

    @Test func wrongTokenIsExit77() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let head = try fixture.commit(work, ["a.txt": "a\n"], message: "Only")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        try withGitServer(fixture) { server in
            let run = try runCheckout(
                server: server, project: project.path, commit: head, jobToken: "glcbt-wrong-token-value")
            #expect(run.exitCode == 77, "\(run.output)")
            #expect(!run.output.contains("glcbt-wrong-token-value"))
            #expect(!FileManager.default.fileExists(atPath: project.file("kiln/checkout.json")))
        }
    }

    @Test func unknownCommitIsExit69NamingCommitAndRefs() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        _ = try fixture.commit(work, ["a.txt": "a\n"], message: "Only")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        let missing = String(repeating: "ab", count: 20)
        try withGitServer(fixture) { server in
            let run = try runCheckout(server: server, project: project.path, commit: missing)
            #expect(run.exitCode == 69, "\(run.output)")
            #expect(run.output.contains(missing))
            #expect(run.output.contains("refs/heads/main"))
            #expect(run.output.contains("refs/pipelines/77"))
        }
    }

    @Test func unreachableServerIsExit69() throws {
        let project = TemporaryDirectory("kiln-project")
        var environment = [
            "PATH": "/usr/bin:/bin", "CI_PROJECT_DIR": project.path,
            "CI_REPOSITORY_URL": "http://127.0.0.1:9/group/app.git",
            "CI_COMMIT_SHA": String(repeating: "a", count: 40), "CI_COMMIT_REF_NAME": "main",
        ]
        environment["HOME"] = NSTemporaryDirectory()
        let run = try runProduct("kiln-checkout", [], environment: environment)
        #expect(run.result.termination == .exited(69), "\(run.output)")
    }

    @Test func cloneIntoAForeignFolderIsExit78() throws {
        let fixture = try GitFixture()
        let work = try fixture.makeProject("group/app")
        let head = try fixture.commit(work, ["a.txt": "a\n"], message: "Only")
        try fixture.push(work)
        let project = TemporaryDirectory("kiln-project")
        try "mine\n".write(toFile: project.file("notes.txt"), atomically: true, encoding: .utf8)
        try withGitServer(fixture) { server in
            let run = try runCheckout(
                server: server, project: project.path, commit: head, extra: ["KILN_GIT_STRATEGY": "clone"])
            #expect(run.exitCode == 78, "\(run.output)")
            #expect(run.output.contains("notes.txt"))
            #expect(read(project.file("notes.txt")) == "mine\n", "nothing removed")
        }
    }
}
