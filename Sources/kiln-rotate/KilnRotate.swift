import ArgumentParser
import KilnCLI
import KilnCore

@main
struct KilnRotate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-rotate",
        abstract: "Roll an Auto Scaling Group onto the new release; writes rotation-<env>.json.",
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    func run() throws {
        try StageMain.run(stage: "kiln-rotate", options: common) { _ in
            throw KilnError.notBuilt(stage: "kiln-rotate")
        }
    }
}
