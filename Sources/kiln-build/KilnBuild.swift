import ArgumentParser
import Build
import KilnCLI
import KilnCore

@main
struct KilnBuild: OfflineStageCommand {
    static let stage = "kiln-build"
    static let configuration = CommandConfiguration(
        commandName: stage,
        abstract: "Build and test the application and package it for the bake; writes build.json.",
        discussion: """
            Runs build.commands and build.test from kiln.yml in the project folder, merges the JUnit reports
            that build.junit names into kiln/junit.xml, and packs build.package into a reproducible tar.gz
            (or takes the file it names as it is). Reads checkout.json from kiln-checkout.
            """,
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    @Option(
        name: .customLong("release-version"),
        help: "The application's version (default: $CI_COMMIT_TAG on a tag, else the checkout's version).")
    var releaseVersion: String?

    func run(in context: StageContext) throws {
        try BuildStage(context: context, flags: BuildFlags(releaseVersion: releaseVersion)).run()
    }
}
