import Foundation
import KilnArtifacts
import KilnCore
import KilnTestSupport
import Testing

/// A sample project: its kiln.yml, files, and the checkout.json an earlier job left.
struct SampleProject {
    let folder = TemporaryDirectory("kiln-build")
    var path: String { folder.path }

    init(kilnYML: String, files: [String: String] = [:], writeCheckout: Bool = true) throws {
        try kilnYML.write(toFile: folder.file("kiln.yml"), atomically: true, encoding: .utf8)
        for (name, content) in files {
            let full = folder.file(name)
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(toFile: full, atomically: true, encoding: .utf8)
        }
        if writeCheckout {
            let checkout = CheckoutResult(
                repository: "http://127.0.0.1:1/group/demo.git", commit: String(repeating: "c", count: 40),
                shortCommit: "cccccccc",
                ref: "main", tag: nil, pipelineID: "9", versionString: "v1.4.0-2-gccccccc",
                commitTime: Date(timeIntervalSince1970: 1_780_000_000),
                subject: "Sample", strategy: .clone, submodules: [], bytesReceived: 1, objectsReceived: 1, phases: [:],
                discardedCache: nil)
            try ArtifactStore(directory: folder.file("kiln"), producer: Producer(name: "kiln-checkout")).write(checkout)
        }
    }

    func read(_ name: String) -> String? { try? String(contentsOfFile: folder.file(name), encoding: .utf8) }

    var buildJSON: [String: Any] {
        guard let data = FileManager.default.contents(atPath: folder.file("kiln/build.json")) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}

func runBuild(
    _ project: SampleProject, _ arguments: [String] = [], environment extra: [String: String] = [:]
) throws -> (code: Int32?, output: String) {
    var environment = [
        "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": project.path,
        "CI_PROJECT_NAME": "demo",
    ]
    environment.merge(extra) { $1 }
    let run = try runProduct("kiln-build", arguments, environment: environment)
    return (run.code, run.output)
}

/// A JUnit report with `passed` passing cases, `failed` failing, `skipped` skipped.
func junit(suite: String, passed: Int, failed: Int = 0, skipped: Int = 0) -> String {
    var cases = ""
    for index in 0..<passed { cases += "<testcase classname=\"\(suite)\" name=\"ok_\(index)\" time=\"0.01\"/>" }
    for index in 0..<failed {
        cases +=
            """
            <testcase classname=\"\(suite)\" name=\"bad_\(index)\"><failure message=\"expected 1 &lt; 2\">\
            trace &amp; more</failure></testcase>
            """
    }
    for index in 0..<skipped {
        cases += "<testcase classname=\"\(suite)\" name=\"skip_\(index)\"><skipped/></testcase>"
    }
    return
        """
        <?xml version=\"1.0\"?><testsuite name=\"\(suite)\" tests=\"\(passed + failed + skipped)\">\(cases)</testsuite>
        """
}

let passingYML = """
    application: demo
    build:
      commands:
        - mkdir -p dist && cp app.sh dist/ && chmod 755 dist/app.sh
        - name: version file
          run: echo "$KILN_VERSION $GREETING" > dist/VERSION
          env:
            GREETING: hello
      test:
        - run: mkdir -p reports/unit reports/api && cp fixtures/unit.xml reports/unit/ && \
    cp fixtures/api.xml reports/api/
      junit:
        - reports/**/*.xml
      package:
        paths: [dist/]
    """

@Suite struct BuildStageTests {
    func passingProject() throws -> SampleProject {
        try SampleProject(
            kilnYML: passingYML,
            files: [
                "app.sh": "#!/bin/sh\necho demo\n",
                "fixtures/unit.xml": junit(suite: "unit", passed: 3, skipped: 1),
                "fixtures/api.xml": junit(suite: "api", passed: 2),
            ])
    }

    @Test func passingProjectGivesArtifactReportAndCounts() throws {
        let project = try passingProject()
        let (code, output) = try runBuild(project)
        #expect(code == 0, "\(output)")
        let json = project.buildJSON
        #expect(json["schema"] as? String == "kiln.build")
        #expect(json["application"] as? String == "demo")
        #expect(json["applicationVersion"] as? String == "v1.4.0-2-gccccccc")
        #expect(json["outcome"] as? String == "passed")
        let counts = (json["tests"] as? [String: Any])?["counts"] as? [String: Int]
        #expect(counts == ["tests": 6, "failures": 0, "errors": 0, "skipped": 1])
        #expect(
            (json["tests"] as? [String: Any])?["reports"] as? [String] == [
                "reports/api/api.xml", "reports/unit/unit.xml",
            ])
        let artifact = try #require(json["artifact"] as? [String: Any])
        #expect(artifact["path"] as? String == "kiln/demo-v1.4.0-2-gccccccc.tar.gz")
        let sha = try SHA256Digest.hex(ofFileAt: project.folder.file("kiln/demo-v1.4.0-2-gccccccc.tar.gz"))
        #expect(artifact["sha256"] as? String == sha)
        #expect(
            project.read("kiln/build.env")
                == """
                KILN_VERSION=v1.4.0-2-gccccccc\n\
                KILN_ARTIFACT=kiln/demo-v1.4.0-2-gccccccc.tar.gz\n\
                KILN_ARTIFACT_SHA256=\(sha)\n
                """
        )
        #expect(output.contains("6 tests: 5 passed, 0 failed, 0 errors, 1 skipped"))
        #expect(GitLabDotenv.violations(project.read("kiln/build.env") ?? "x") == [])
        let commands = json["commands"] as? [[String: Any]] ?? []
        #expect(commands.map { $0["name"] as? String } == ["commands 1", "version file", "test 1"])
        // The merged report is JUnit with both suites and the totals.
        let merged = try XMLReader.parse(try #require(project.read("kiln/junit.xml")))
        #expect(merged.name == "testsuites")
        #expect(merged.attributes["tests"] == "6")
        #expect(merged.all("testsuite").count == 2)
        // The tarball holds the build's files with normalised owners and modes.
        let listing = try listTar(project.folder.file("kiln/demo-v1.4.0-2-gccccccc.tar.gz"))
        #expect(listing.contains("-rwxr-xr-x 0/0") && listing.contains("./dist/app.sh"))
        #expect(listing.contains("./dist/VERSION"))
        #expect(!listing.contains("kiln/"))
        let tarred = try extractFile(project.folder.file("kiln/demo-v1.4.0-2-gccccccc.tar.gz"), "./dist/VERSION")
        #expect(tarred == "v1.4.0-2-gccccccc hello\n")
    }

    @Test func failingTestIsExit2AndTheReportIsStillWritten() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  test:
                    - run: mkdir -p out && cp fixtures/unit.xml out/ && exit 1
                  junit: out/*.xml
                  package:
                    paths: [app.sh]
                """, files: ["app.sh": "x\n", "fixtures/unit.xml": junit(suite: "unit", passed: 4, failed: 2)])
        let (code, output) = try runBuild(project)
        #expect(code == 2, "\(output)")
        #expect(output.contains("test command 'test 1'"))
        #expect(output.contains("exit code 1"))
        let merged = try XMLReader.parse(try #require(project.read("kiln/junit.xml")))
        #expect(merged.attributes["failures"] == "2")
        #expect(merged.first(named: "failure")?.attributes["message"] == "expected 1 < 2")
        let json = project.buildJSON
        #expect(json["outcome"] as? String == "failed")
        #expect(json["artifact"] == nil)
        #expect(((json["tests"] as? [String: Any])?["counts"] as? [String: Int])?["failures"] == 2)
    }

    @Test func failingBuildCommandNamesItAndStops() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  commands:
                    - name: compile
                      run: "echo 'cc: error: missing.c' >&2; exit 3"
                    - touch should-not-run
                  package:
                    paths: [x]
                """)
        let (code, output) = try runBuild(project)
        #expect(code == 2)
        #expect(
            output.contains("build command 'compile' (\(project.folder.file("kiln.yml")):3) failed with exit code 3"))
        #expect(output.contains("cc: error: missing.c"))
        #expect(!FileManager.default.fileExists(atPath: project.folder.file("should-not-run")))
    }

    @Test func hangingCommandIsStoppedWithItsWholeGroup() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  commands:
                    - run: sleep 300 & echo $! > grandchild.pid; wait
                      timeout: 1s
                  package:
                    paths: [x]
                """)
        let started = Date()
        let (code, output) = try runBuild(project)
        #expect(code == 2, "\(output)")
        #expect(output.contains("timed out after 1.0s"))
        #expect(Date().timeIntervalSince(started) < 60)
        let pid = try #require(
            pid_t(project.read("grandchild.pid")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        var alive = true
        for _ in 0..<100 where alive {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            alive = kill(pid, 0) == 0 && !stat.contains(") Z ")
            if alive { usleep(50_000) }
        }
        #expect(!alive, "the grandchild \(pid) was stopped too")
    }

    @Test func sigtermStopsTheCommandsGroupAndExitsPromptly() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  commands:
                    - run: trap 'echo stopped > got-term; exit 1' TERM; touch running; while true; do sleep 0.1; done
                  package:
                    paths: [x]
                """)
        let environment = [
            "PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "CI_PROJECT_DIR": project.path,
            "CI_PROJECT_NAME": "demo",
        ]
        let child = try ChildProcess.spawn(
            Command(TestPaths.product("kiln-build"), [], environment: environment), stdin: .null, stdout: .null,
            stderr: .null)
        var waited = 0
        while !FileManager.default.fileExists(atPath: project.folder.file("running")) && waited < 600 {
            usleep(50_000)
            waited += 1
        }
        let sent = Date()
        kill(child.pid, SIGTERM)  // as GitLab cancels a job: to Kiln, not to the group
        let ended = child.stop(grace: 30)
        #expect(ended == .exited(143))
        #expect(Date().timeIntervalSince(sent) < 10)
        #expect(project.read("got-term") == "stopped\n")
    }

    @Test func globMatchingNothingIsAClearError() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  test: "true"
                  junit: [build/test-results/*.xml]
                  package: {paths: [kiln.yml]}
                """)
        let (code, output) = try runBuild(project)
        #expect(code == 2)
        #expect(output.contains("'build/test-results/*.xml' matches no file"))
    }

    @Test func brokenJUnitIsAClearError() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  test: "true"
                  junit: [r/*.xml]
                  package: {paths: [kiln.yml]}
                """,
            files: [
                "r/good.xml": junit(suite: "s", passed: 1),
                "r/broken.xml": "<testsuite><testcase name=\"x\"></testsuite>", "r/other.xml": "<coverage/>",
            ])
        let (code, output) = try runBuild(project)
        #expect(code == 2)
        #expect(output.contains("r/broken.xml: not a JUnit report"))
        let (_, second) = try runBuild(
            try SampleProject(
                kilnYML: """
                    build:
                      test: "true"
                      junit: [r/other.xml]
                      package: {paths: [kiln.yml]}
                    """, files: ["r/other.xml": "<coverage/>"]))
        #expect(second.contains("the root element is <coverage>"))
    }

    @Test func sameTreeGivesTheSameBytesAndAChangeChangesThem() throws {
        let yml = """
            build:
              commands: ["true"]
              package:
                paths: [src, README]
            """
        let files = ["src/a.txt": "a\n", "src/deep/b.txt": "b\n", "README": "r\n"]
        let first = try SampleProject(kilnYML: yml, files: files)
        let second = try SampleProject(kilnYML: yml, files: files)
        // Other times and modes on disk must not matter.
        _ = utimes(second.folder.file("src/a.txt"), nil)
        chmod(second.folder.file("src/deep/b.txt"), 0o600)
        #expect(try runBuild(first).code == 0)
        #expect(try runBuild(second).code == 0)
        let name = "kiln/demo-v1.4.0-2-gccccccc.tar.gz"
        let one = try Data(contentsOf: URL(fileURLWithPath: first.folder.file(name)))
        let two = try Data(contentsOf: URL(fileURLWithPath: second.folder.file(name)))
        #expect(one == two)
        try "changed\n".write(toFile: second.folder.file("src/deep/b.txt"), atomically: true, encoding: .utf8)
        #expect(try runBuild(second).code == 0)
        #expect(
            (second.buildJSON["artifact"] as? [String: Any])?["sha256"] as? String
                != (first.buildJSON["artifact"] as? [String: Any])?["sha256"] as? String)
    }

    /// Issue 13, item 19: a job folder with the setgid bit (shared runners)
    /// makes every folder the build creates setgid, and a build may leave a
    /// setuid file or a sticky folder: the package holds modes 644 and 755 only.
    @Test func specialModeBitsAreNotPacked() throws {
        let project = try SampleProject(
            kilnYML: """
                application: demo
                build:
                  commands:
                    - mkdir -p dist/lib dist/tmp && cp app.sh dist/ && cp app.sh dist/lib/data
                    - chmod 4755 dist/app.sh && chmod 2644 dist/lib/data && chmod 1777 dist/tmp
                  package:
                    paths: [dist/]
                """,
            files: ["app.sh": "#!/bin/sh\necho demo\n"])
        #expect(chmod(project.path, 0o2775) == 0)
        let (code, output) = try runBuild(project)
        #expect(code == 0, "\(output)")
        var folder = stat()
        #expect(stat(project.folder.file("dist/lib"), &folder) == 0)
        #expect(folder.st_mode & 0o2000 != 0, "the build's folders inherit setgid from the job folder")
        let script = """
            import sys, tarfile
            for member in tarfile.open(sys.argv[1]):
                print(member.name, oct(member.mode))
            """
        let runner = ProcessRunner(
            log: LogWriter(sink: MemorySink(), style: .plain, secrets: SecretMask()), cancellation: Cancellation())
        let listing = String(
            decoding: try runner.check(
                Command(
                    "/usr/bin/python3", ["-c", script, project.folder.file("kiln/demo-v1.4.0-2-gccccccc.tar.gz")]),
                what: "tarfile", failure: .internalError, output: .capture
            ).standardOutput, as: UTF8.self)
        let modes = Dictionary(
            uniqueKeysWithValues: listing.split(separator: "\n").map { line in
                let fields = line.split(separator: " ")
                return (String(fields[0]), String(fields[1]))
            })
        #expect(
            modes == [
                "./dist": "0o755", "./dist/app.sh": "0o755", "./dist/lib": "0o755", "./dist/lib/data": "0o644",
                "./dist/tmp": "0o755",
            ], "\(listing)")
    }

    @Test func prebuiltDebIsTakenAsIs() throws {
        let project = try SampleProject(
            kilnYML: """
                build:
                  commands: ["mkdir -p out && printf '!<arch>\\\\ndebian-binary' > out/demo_1.4.0_amd64.deb"]
                  package:
                    file: out/demo_1.4.0_amd64.deb
                """)
        let (code, output) = try runBuild(project)
        #expect(code == 0, "\(output)")
        let artifact = try #require(project.buildJSON["artifact"] as? [String: Any])
        #expect(artifact["path"] as? String == "out/demo_1.4.0_amd64.deb")
        #expect(artifact["kind"] as? String == "file")
        #expect(
            artifact["sha256"] as? String
                == (try SHA256Digest.hex(ofFileAt: project.folder.file("out/demo_1.4.0_amd64.deb"))))
    }

    @Test func tagAndFlagSetTheVersion() throws {
        let project = try passingProject()
        #expect(try runBuild(project, environment: ["CI_COMMIT_TAG": "v2.0.0"]).code == 0)
        #expect(project.buildJSON["applicationVersion"] as? String == "v2.0.0")
        #expect(
            try runBuild(project, ["--release-version", "2.0.0-rc.1"], environment: ["CI_COMMIT_TAG": "v2.0.0"]).code
                == 0)
        #expect(project.buildJSON["applicationVersion"] as? String == "2.0.0-rc.1")
    }

    @Test func badInputsHaveTheirExitCodes() throws {
        let noCheckout = try SampleProject(kilnYML: passingYML, writeCheckout: false)
        let (missing, missingOutput) = try runBuild(noCheckout)
        #expect(missing == 65)
        #expect(missingOutput.contains("checkout.json"))

        let noSection = try SampleProject(kilnYML: "application: demo\n")
        let (section, sectionOutput) = try runBuild(noSection)
        #expect(section == 78)
        #expect(sectionOutput.contains("no 'build' section"))

        let noPackage = try SampleProject(kilnYML: "build:\n  commands: [\"true\"]\n")
        let (package, packageOutput) = try runBuild(noPackage)
        #expect(package == 78)
        #expect(packageOutput.contains("build.package"))

        let typo = try SampleProject(kilnYML: "build:\n  comands: [\"true\"]\n  package: {paths: [x]}\n")
        let (typoCode, typoOutput) = try runBuild(typo)
        #expect(typoCode == 78)
        #expect(typoOutput.contains("kiln.yml:2: build.comands: unknown key"))
    }
}

extension BuildStageTests {
    /// Issue 13, item 12: a limit of 0 would stop every command at once.
    @Test func aTimeoutOfZeroIsRefusedWithTheRangeAllowed() throws {
        for (yaml, line) in [
            ("build:\n  timeout: 0\n  test: [\"true\"]\n  package: {paths: [kiln.yml]}\n", "kiln.yml:2: build.timeout"),
            (
                "build:\n  test:\n    - {run: \"true\", timeout: 0s}\n  package: {paths: [kiln.yml]}\n",
                "kiln.yml:3: build.test[0].timeout"
            ),
        ] {
            let project = try SampleProject(kilnYML: yaml)
            let (code, output) = try runBuild(project)
            #expect(code == 78, "\(output)")
            #expect(output.contains("\(line): must be at least 1s, got '0s'"), "\(output)")
            #expect(project.read("kiln/build.json") == nil)
        }
    }
}

func listTar(_ path: String) throws -> String {
    let runner = ProcessRunner(
        log: LogWriter(sink: MemorySink(), style: .plain, secrets: SecretMask()), cancellation: Cancellation())
    return String(
        decoding: try runner.check(
            Command("tar", ["-tzvf", path]), what: "tar", failure: .internalError, output: .capture
        ).standardOutput, as: UTF8.self)
}

func extractFile(_ archive: String, _ member: String) throws -> String {
    let runner = ProcessRunner(
        log: LogWriter(sink: MemorySink(), style: .plain, secrets: SecretMask()), cancellation: Cancellation())
    return String(
        decoding: try runner.check(
            Command("tar", ["-xzOf", archive, member]), what: "tar", failure: .internalError, output: .capture
        ).standardOutput, as: UTF8.self)
}
