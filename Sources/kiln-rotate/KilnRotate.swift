import ArgumentParser
import KilnCLI
import KilnCore
import Rotate
import UserData

/// The options every kiln-rotate subcommand takes.
struct RotateOptions: ParsableArguments {
    @OptionGroup var common: CommonOptions

    @Option(help: "The environment whose group to roll (default: $CI_ENVIRONMENT_NAME).")
    var environment: String?

    @Option(name: .customLong("terraform-outputs"), help: "The JSON of 'terraform output -json' (default: $KILN_TERRAFORM_OUTPUTS).")
    var terraformOutputs: String?

    @Option(help: "rolling, canary or blue-green (default: kiln.yml, else rolling).")
    var strategy: String?

    @Option(help: "Instances per batch, or a percentage such as 25% (default: kiln.yml, else 1).")
    var batch: String?

    func stage(_ context: StageContext) throws -> RotateStage {
        guard let environment = environment ?? context.job.environmentName else {
            throw KilnError.badConfiguration("no environment: give --environment, or run in a job with environment: name (CI_ENVIRONMENT_NAME)")
        }
        let outputs = try (terraformOutputs ?? context.job["KILN_TERRAFORM_OUTPUTS"]).map(TerraformOutputs.load) ?? .none
        var stage = RotateStage(context: context, environment: environment, terraform: outputs)
        if let strategy {
            guard let value = RotationStrategy(settingText: strategy) else { throw KilnError.usage("--strategy: expected \(RotationStrategy.expected), got '\(strategy)'") }
            stage.strategyOverride = value
        }
        if let batch {
            guard let value = BatchSize(settingText: batch) else { throw KilnError.usage("--batch: expected \(BatchSize.expected), got '\(batch)'") }
            stage.batchOverride = value
        }
        return stage
    }
}

@main
struct KilnRotate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln-rotate",
        abstract: "Roll an Auto Scaling Group onto the new release; writes rotation-<env>.json.",
        discussion: """
            Reads image.json and userdata-<env>.json. A new launch template version with the new AMI and user data;
            the group pointed at that exact version; every old instance replaced, batch by batch, through the
            health gate; rolled back when the new release does not become healthy (exit 3).
            """,
        version: Kiln.version,
        subcommands: [Deploy.self, Resume.self, Plan.self, Rollback.self],
        defaultSubcommand: Deploy.self)

    struct Deploy: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Roll the group onto the release (the default).")
        @OptionGroup var options: RotateOptions
        @Flag(name: .customLong("no-rollback"), help: "On failure, leave the group as it stands for a person to look at.")
        var noRollback = false
        @Flag(name: .customLong("dry-run"), help: "Print the plan and change nothing.")
        var dryRun = false

        func run() throws {
            try StageMain.run(stage: "kiln-rotate", options: options.common) { context in
                var stage = try options.stage(context)
                stage.rollbackOnFailure = !noRollback
                _ = try stage.run(.deploy(dryRun: dryRun))
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Finish the rotation a killed run left (what a re-run of the job does too).")
        @OptionGroup var options: RotateOptions
        func run() throws {
            try StageMain.run(stage: "kiln-rotate", options: options.common) { context in
                _ = try options.stage(context).run(.deploy(dryRun: false))
            }
        }
    }

    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the batches, sizes, checks and AWS calls; refuse an impossible plan (exit 78).")
        @OptionGroup var options: RotateOptions
        func run() throws {
            try StageMain.run(stage: "kiln-rotate", options: options.common) { context in
                _ = try options.stage(context).run(.plan)
            }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Undo the last rotation by hand.")
        @OptionGroup var options: RotateOptions
        func run() throws {
            try StageMain.run(stage: "kiln-rotate", options: options.common) { context in
                _ = try options.stage(context).run(.rollback)
            }
        }
    }
}
