import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, item 3: tar, which Kiln runs for itself, gets the job's
/// environment without its secrets; the project's own commands keep the
/// whole job environment, as GitLab gives it. Before the fix tar got the
/// job token like every other child.
@Suite struct ToolEnvironmentTests {
    @Test func tarGetsNoJobTokenAndTheBuildCommandsDo() throws {
        let project = try SampleProject(
            kilnYML: """
                application: demo
                build:
                  commands:
                    - mkdir -p dist && echo hi > dist/a && echo "token:$CI_JOB_TOKEN" > command-saw
                  package:
                    paths: [dist/]
                """)
        let bin = project.folder.file("fake-bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let realTar = FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") ? "/usr/bin/tar" : "/bin/tar"
        try "#!/bin/sh\nenv > \"\(project.folder.file("tar-saw"))\"\nexec \(realTar) \"$@\"\n"
            .write(toFile: bin + "/tar", atomically: true, encoding: .utf8)
        chmod(bin + "/tar", 0o755)
        let token = "glcbt-64_tokenfortoolstest"
        let (code, output) = try runBuild(
            project,
            environment: [
                "PATH": "\(bin):/usr/bin:/bin", "CI_JOB_TOKEN": token,
                "CI_REPOSITORY_URL": "http://gitlab-ci-token:\(token)@127.0.0.1:9/g/demo.git",
            ])
        #expect(code == 0, "\(output)")
        let tarSaw = try String(contentsOfFile: project.folder.file("tar-saw"), encoding: .utf8)
        #expect(!tarSaw.contains(token), "tar was given the job token")
        #expect(tarSaw.contains("CI_PROJECT_NAME=demo"), "and the rest of the job's environment")
        #expect(project.read("command-saw") == "token:\(token)\n", "the project's commands keep the job's environment")
    }
}
