import ArgumentParser
import KilnCLI
import KilnCore

@main
struct KilnUserData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-userdata",
        abstract: "Render an environment's user_init script (EC2 user data); writes userdata-<env>.json.",
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    func run() throws {
        try StageMain.run(stage: "kiln-userdata", options: common) { _ in
            throw KilnError.notBuilt(stage: "kiln-userdata")
        }
    }
}
