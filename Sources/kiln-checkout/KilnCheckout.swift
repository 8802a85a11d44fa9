import ArgumentParser
import KilnCLI
import KilnCore

@main
struct KilnCheckout: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-checkout",
        abstract: "Check out the pipeline's commit with libgit2 and write checkout.json.",
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    func run() throws {
        try StageMain.run(stage: "kiln-checkout", options: common) { _ in
            throw KilnError.notBuilt(stage: "kiln-checkout")
        }
    }
}
