import ArgumentParser
import KilnCLI
import KilnCore

@main
struct KilnBake: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-bake",
        abstract: "Bake and tag the AMI with Packer and Ansible; writes image.json.",
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    func run() throws {
        try StageMain.run(stage: "kiln-bake", options: common) { _ in
            throw KilnError.notBuilt(stage: "kiln-bake")
        }
    }
}
