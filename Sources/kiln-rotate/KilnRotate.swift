import ArgumentParser
import KilnAWS
import KilnAWSCLI
import KilnArtifacts
import KilnCLI
import KilnCore
import Rotate

/// The options every kiln-rotate subcommand takes.
struct RotateOptions: ParsableArguments {
    @OptionGroup var common: CommonOptions
    @OptionGroup var aws: AWSOptions

    @Option(help: "The environment whose group to roll (default: $CI_ENVIRONMENT_NAME).")
    var environment: String?

    @Option(
        name: .customLong("terraform-outputs"),
        help: "The JSON of 'terraform output -json' (default: $KILN_TERRAFORM_OUTPUTS).")
    var terraformOutputs: String?

    @Option(help: "rolling, canary or blue-green (default: kiln.yml, else rolling).")
    var strategy: RotationStrategy?

    @Option(help: "Instances per batch, or a percentage such as 25% (default: kiln.yml, else 1).")
    var batch: BatchSize?

    func flags(rollbackOnFailure: Bool = true) -> RotateFlags {
        RotateFlags(
            environment: environment, terraformOutputs: terraformOutputs, strategy: strategy, batch: batch,
            rollbackOnFailure: rollbackOnFailure)
    }
}

/// A kiln-rotate subcommand: its options, and what it asks of the stage.
protocol RotateSubcommand: AWSStageCommand {
    var options: RotateOptions { get }
    var action: RotateAction { get }
    var rollbackOnFailure: Bool { get }
}

extension RotateSubcommand {
    static var stage: String { "kiln-rotate" }
    var common: CommonOptions { options.common }
    var aws: AWSOptions { options.aws }
    var rollbackOnFailure: Bool { true }

    func run(in context: StageContext, aws: AWSEnvironment) throws {
        try RotateStage(context: context, aws: aws, flags: options.flags(rollbackOnFailure: rollbackOnFailure)).run(
            action)
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

    struct Deploy: RotateSubcommand {
        static let configuration = CommandConfiguration(abstract: "Roll the group onto the release (the default).")
        @OptionGroup var options: RotateOptions
        @Flag(
            name: .customLong("no-rollback"), help: "On failure, leave the group as it stands for a person to look at.")
        var noRollback = false
        @Flag(name: .customLong("dry-run"), help: "Print the plan and change nothing.")
        var dryRun = false

        var action: RotateAction { .deploy(dryRun: dryRun) }
        var rollbackOnFailure: Bool { !noRollback }
    }

    struct Resume: RotateSubcommand {
        static let configuration = CommandConfiguration(
            abstract: "Finish the rotation a killed run left (what a re-run of the job does too).")
        @OptionGroup var options: RotateOptions
        var action: RotateAction { .deploy(dryRun: false) }
    }

    struct Plan: RotateSubcommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the batches, sizes, checks and AWS calls; refuse an impossible plan (exit 78).")
        @OptionGroup var options: RotateOptions
        var action: RotateAction { .plan }
    }

    struct Rollback: RotateSubcommand {
        static let configuration = CommandConfiguration(abstract: "Undo the last rotation by hand.")
        @OptionGroup var options: RotateOptions
        var action: RotateAction { .rollback }
    }
}

extension RotationStrategy: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
extension BatchSize: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
