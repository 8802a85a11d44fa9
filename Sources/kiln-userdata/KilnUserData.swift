import ArgumentParser
import KilnCLI
import KilnCore
import UserData

@main
struct KilnUserData: OfflineStageCommand {
    static let stage = "kiln-userdata"
    static let configuration = CommandConfiguration(
        commandName: stage,
        abstract: "Render an environment's user_init script (EC2 user data); writes userdata-<env>.json.",
        discussion: """
            Reads image.json and environments.<env>.userdata of kiln.yml. Every value is escaped for where it
            lands: shell words in a #! script, YAML scalars in a #cloud-config. Secrets are refused.
            """,
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    @Option(help: "The environment to render for (default: $CI_ENVIRONMENT_NAME).")
    var environment: String?

    @Option(
        name: .customLong("terraform-outputs"),
        help: "The JSON of 'terraform output -json' (default: $KILN_TERRAFORM_OUTPUTS).")
    var terraformOutputs: String?

    func run(in context: StageContext) throws {
        let flags = UserDataFlags(environment: environment, terraformOutputs: terraformOutputs)
        try UserDataStage(context: context, flags: flags).run()
    }
}
