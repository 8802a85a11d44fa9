import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Runs a built stage binary the way a job would, and keeps what it printed.
func runBinary(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (ProcessResult, String) {
    let sink = MemorySink()
    let runner = ProcessRunner(log: LogWriter(sink: sink, style: .plain, secrets: SecretMask()), cancellation: Cancellation())
    var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { $1 }
    let result = try runner.run(Command(TestPaths.product(name), arguments, environment: env), timeout: 120)
    return (result, sink.text)
}

let stages = ["kiln-checkout", "kiln-build", "kiln-bake", "kiln-userdata", "kiln-rotate"]

@Suite struct ExecutableTests {
    @Test(arguments: stages)
    func helpExitsZero(stage: String) throws {
        let (result, output) = try runBinary(stage, ["--help"])
        #expect(result.termination == .exited(0))
        #expect(output.contains("USAGE: \(stage)"))
        #expect(output.contains("--artifacts-dir"))
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

    @Test(arguments: stages)
    func unbuiltStageSaysSoAndExitsOne(stage: String) throws {
        let folder = TemporaryDirectory()
        let (result, output) = try runBinary(stage, [], environment: ["CI_PROJECT_DIR": folder.path])
        #expect(result.termination == .exited(1))
        #expect(output.contains("not built yet"))
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
        let (result, output) = try runBinary("kiln-build", ["--config", folder.file("missing-glcbt-secret.yml")], environment: [
            "GITLAB_CI": "true", "CI_JOB_TOKEN": "glcbt-secret", "CI_PROJECT_DIR": folder.path,
        ])
        #expect(result.termination == .exited(78))
        #expect(!output.contains("glcbt-secret"))
        #expect(output.contains("missing-[MASKED].yml"))
    }
}
