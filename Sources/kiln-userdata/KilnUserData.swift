import ArgumentParser
import KilnCLI
import KilnCore
import UserData

@main
struct KilnUserData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-userdata",
        abstract: "Render an environment's user_init script (EC2 user data); writes userdata-<env>.json.",
        discussion: """
            Reads image.json and environments.<env>.userdata of kiln.yml. Every value is escaped for where it
            lands: shell words in a #! script, YAML scalars in a #cloud-config. Secrets are refused.
            """,
        version: Kiln.version)

    @OptionGroup var common: CommonOptions

    @Option(help: "The environment to render for (default: $CI_ENVIRONMENT_NAME).")
    var environment: String?

    @Option(name: .customLong("terraform-outputs"), help: "The JSON of 'terraform output -json' (default: $KILN_TERRAFORM_OUTPUTS).")
    var terraformOutputs: String?

    func run() throws {
        try StageMain.run(stage: "kiln-userdata", options: common) { context in
            guard let environment = environment ?? context.job.environmentName else {
                throw KilnError.badConfiguration("no environment: give --environment, or run in a job with environment: name (CI_ENVIRONMENT_NAME)")
            }
            let outputs = try (terraformOutputs ?? context.job["KILN_TERRAFORM_OUTPUTS"]).map(TerraformOutputs.load) ?? .none
            _ = try UserDataStage(context: context, environment: environment, terraform: outputs).run()
        }
    }
}
