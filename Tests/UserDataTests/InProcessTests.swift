import Foundation
import KilnArtifacts
import KilnCore
import KilnTestSupport
import Testing
import UserData

/// The stage run in the test's own process, from a context the test builds
/// (issue 12: every stage runs from a context a test can build). The
/// clock is the test's: the artifact's date is the one it says.
@Suite struct InProcessUserDataTests {
    @Test func aStageRunsFromAContextTheTestBuilds() throws {
        let project = try UserDataProject(
            kilnYML: """
                environments:
                  test:
                    userdata:
                      template: deploy/user_init.sh
                    variables:
                      PLAIN: plain words
                """,
            templates: ["deploy/user_init.sh": "#!/bin/sh\necho {{ PLAIN }} {{ kiln.version }}\n"])
        let sink = MemorySink()
        let when = Date(timeIntervalSince1970: 1_800_000_000)
        let job = JobContext(environment: [
            "PATH": "/usr/bin:/bin", "CI_PROJECT_DIR": project.path, "CI_ENVIRONMENT_NAME": "test",
            "CI_PIPELINE_ID": "42",
        ])
        let context = try StageContext.make(stage: "kiln-userdata", job: job, sink: sink, clock: .fixed(when))
        #expect(context.projectDirectory == project.path)

        let result = try UserDataStage(context: context, flags: UserDataFlags()).run()

        #expect(result.environment == "test", "the environment came from CI_ENVIRONMENT_NAME, resolved by the stage")
        #expect(result.format == .shell)
        #expect(project.read("kiln/userdata-test.sh") == "#!/bin/sh\necho 'plain words' 'v1.4.0'\n")
        let written = try context.artifacts.read(
            UserDataResult.self, fileName: UserDataResult.fileName(environment: "test"))
        #expect(written.createdAt == when)
        #expect(written.producer.name == "kiln-userdata")
        #expect(sink.text.contains("userdata: test: shell"))
    }

    @Test func noEnvironmentIsABadConfigurationBeforeAnythingIsRead() throws {
        let project = try UserDataProject(kilnYML: "environments: {}\n", templates: [:])
        let job = JobContext(environment: ["CI_PROJECT_DIR": project.path])
        let context = try StageContext.make(stage: "kiln-userdata", job: job, sink: MemorySink())
        #expect(
            expectExit(.badConfiguration) { _ = try UserDataStage(context: context, flags: UserDataFlags()) } == nil)
        #expect(try UserDataStage(context: context, flags: UserDataFlags(environment: "live")).environment == "live")
    }
}
