import ArgumentParser
import Bake
import KilnAWS
import KilnAWSCLI
import KilnArtifacts
import KilnCLI
import KilnCore

@main
struct KilnBake: AWSStageCommand {
    static let stage = "kiln-bake"
    static let configuration = CommandConfiguration(
        commandName: stage,
        abstract: "Bake and tag the AMI with Packer and Ansible; writes image.json.",
        discussion: """
            Reads build.json (--role app) or nothing (--role base), resolves the source AMI and computes the bake key. \
            An available AMI with that key is reused and nothing is launched; otherwise 'packer build' runs the \
            template (bake.template, else packer/kiln.pkr.hcl, else Kiln's own). 'kiln-bake prune' removes old images.
            """,
        version: Kiln.version,
        subcommands: [Prune.self])

    @OptionGroup var common: CommonOptions
    @OptionGroup var aws: AWSOptions
    @OptionGroup var options: BakeOptions

    func run(in context: StageContext, aws: AWSEnvironment) throws {
        try BakeStage(context: context, aws: aws, flags: options.flags, executablePath: "/proc/self/exe").run()
    }
}

struct BakeOptions: ParsableArguments {
    @Option(
        help:
            """
            app (default: the application on the newest base image) or base (Ubuntu brought up to date); \
            $KILN_BAKE_ROLE.
            """
    )
    var role: BakeRole?

    @Option(
        help: ArgumentHelp(
            "The Packer template, a file or a folder"
                + " (default: bake.template, $KILN_PACKER_TEMPLATE, packer/kiln.pkr.hcl, Kiln's own).",
            valueName: "path"))
    var template: String?

    @Option(
        help: ArgumentHelp("The packer executable (default: $KILN_PACKER, else packer on PATH).", valueName: "path"))
    var packer: String?

    @Option(
        name: .customLong("source-ami"),
        help:
            "Bake from this AMI (default: bake.source_ami, $KILN_SOURCE_AMI, else the newest base image or Ubuntu LTS)."
    )
    var sourceAMI: String?

    @Option(
        help:
            """
            Publish the AMI id to the SSM parameter /kiln/<app>/<role>/<channel> (default: \
            bake.channel, $KILN_BAKE_CHANNEL).
            """
    )
    var channel: String?

    var flags: BakeFlags {
        BakeFlags(role: role, template: template, packer: packer, sourceAMI: sourceAMI, channel: channel)
    }
}

extension KilnBake {
    struct Prune: AWSStageCommand {
        static let stage = "kiln-bake"
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract:
                """
                Keep the newest images per application and role; \
                deregister the rest (and their snapshots) unless still used.
                """
        )

        @OptionGroup var common: CommonOptions
        @OptionGroup var aws: AWSOptions
        @OptionGroup var options: BakeOptions

        @Option(help: "How many images to keep per application and role (default: bake.keep, $KILN_BAKE_KEEP, else 5).")
        var keep: Int?

        @Flag(name: .customLong("dry-run"), help: "Say what would be deregistered; change nothing.")
        var dryRun = false

        func run(in context: StageContext, aws: AWSEnvironment) throws {
            _ = try ImagePrune(
                context: context, aws: aws, flags: options.flags, keep: keep, dryRun: dryRun,
                executablePath: "/proc/self/exe"
            ).run()
        }
    }
}

extension BakeRole: ExpressibleByArgument {
    /// As the same text in a variable or kiln.yml.
    public init?(argument: String) { self.init(settingText: argument) }
}
