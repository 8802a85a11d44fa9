import ArgumentParser
import KilnCLI
import KilnCore

@main
struct KilnBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-build",
        abstract: "Build and test the application and package it for the bake; writes build.json.",
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    func run() throws {
        try StageMain.run(stage: "kiln-build", options: common) { _ in
            throw KilnError.notBuilt(stage: "kiln-build")
        }
    }
}
