import Foundation
import KilnCore
import KilnTestSupport
import Testing

/// Issue 13, item 9: everything a stage writes is checked before any of it
/// is written. On 0.1.0 a version with a newline failed on build.env only
/// after the commands had run and build.json and the tarball were written.
@Suite struct OutputSetTests {
    func project() throws -> SampleProject {
        try SampleProject(
            kilnYML: """
                application: demo
                build:
                  commands:
                    - touch ran-the-build && mkdir -p dist && echo hi > dist/a
                  package:
                    paths: [dist/]
                """)
    }

    func expectNothingWritten(_ project: SampleProject, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: project.folder.file("kiln")).sorted()
        #expect(names == ["checkout.json"], "written: \(names)", sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: project.folder.file("ran-the-build")),
            sourceLocation: sourceLocation)
    }

    @Test func aVersionFlagWithANewlineIsAUsageErrorBeforeAnything() throws {
        let project = try project()
        let (code, output) = try runBuild(project, ["--release-version", "v1.0\nKILN_AMI_ID=ami-evil"])
        #expect(code == 64, "\(output)")
        #expect(output.contains("--release-version"))
        #expect(output.contains("\\n"), "the newline is shown escaped")
        try expectNothingWritten(project)
    }

    @Test func aTagThatCannotBeAVersionIsABadConfigurationBeforeAnything() throws {
        let project = try project()
        let (code, output) = try runBuild(project, environment: ["CI_COMMIT_TAG": "--upload-pack=touch x"])
        #expect(code == 78, "\(output)")
        #expect(output.contains("CI_COMMIT_TAG"))
        try expectNothingWritten(project)
    }

    @Test func aDotenvValueGitLabWouldRefuseLeavesNeitherFile() throws {
        let folder = TemporaryDirectory()
        let store = ArtifactStore(directory: folder.file("kiln"), producer: Producer(name: "test"))
        var dotenv = Dotenv()
        dotenv.set("KILN_VERSION", "it's")
        #expect(
            expectExit(.badConfiguration) {
                _ = try store.write(SamplePayloadForSets(value: "x"), dotenv: dotenv, dotenvFileName: "sample.env")
            } == nil)
        #expect(!FileManager.default.fileExists(atPath: folder.file("kiln/sample.json")))
        #expect(!FileManager.default.fileExists(atPath: folder.file("kiln/sample.env")))
    }
}

struct SamplePayloadForSets: ArtifactPayload, Equatable {
    static let schemaName = "sample"
    static let schemaVersion = 1
    var value: String
}
