import Foundation
import KilnArtifacts
import KilnCore

/// One `packer build -machine-readable` of the project's template, with
/// Kiln's variables in a var file, its output streamed into the log and
/// parsed at the end, and a cancelled job turned into SIGINT for Packer (so
/// that Packer terminates its builder instance and deletes what it made).
public struct PackerRun: Sendable {
    /// The variables Kiln gives every template (a template declares those it uses).
    public static let kilnVariables = [
        "source_ami", "ami_name", "region", "instance_type", "subnet_id", "tags", "role", "application",
        "application_version", "artifact", "artifact_sha256", "playbooks_dir", "ec2_endpoint", "communicator",
    ]

    public var packer: String
    public var template: String
    /// Kiln's variables and the project's (`bake.variables`), as JSON values.
    public var variables: [String: VariableValue]
    /// Packer's whole environment.
    public var environment: [String: String]
    public var workingDirectory: String

    public enum VariableValue: Sendable, Equatable, Encodable {
        case string(String)
        case bool(Bool)
        case map([String: String])
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let text): try container.encode(text)
            case .bool(let value): try container.encode(value)
            case .map(let map): try container.encode(map)
            }
        }
    }

    /// What only a world on loopback needs (EC2 a stand-in on 127.0.0.0/8, whose
    /// instance bodies listen on their private 127.x address): SSH to the
    /// private address, and no public one, which moto would make up off the
    /// machine. The shipped template declares both with a null default, so
    /// that against AWS Packer keeps its own behaviour. Nothing for AWS.
    public static func loopbackVariables(ec2Endpoint: String) -> [String: VariableValue] {
        guard let host = URLComponents(string: ec2Endpoint)?.host else { return [:] }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        let inLoopbackNet = octets.count == 4 && octets.allSatisfy { $0 != nil } && octets[0] == 127
        guard host == "localhost" || inLoopbackNet else { return [:] }
        return ["ssh_interface": .string("private_ip"), "associate_public_ip_address": .bool(false)]
    }

    public struct Outcome: Sendable {
        public var output: PackerOutput
        public var result: ProcessResult
    }

    public init(
        packer: String, template: String, variables: [String: VariableValue], environment: [String: String],
        workingDirectory: String
    ) {
        self.packer = packer
        self.template = template
        self.variables = variables
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// Variables that mean one thing to Kiln and another to Packer's amazon
    /// builder, which reads them as its waiters' settings (packer-plugin-amazon,
    /// builder/common/state.go `getEnvOverrides`): `AWS_MAX_ATTEMPTS` is
    /// Kiln's attempts per AWS request but Packer's number of polls of every
    /// wait (packer issue 8415: a small value ends in "ResourceNotReady:
    /// exceeded wait attempts"); the others are Packer's waiting, which the
    /// template's `aws_polling` block sets instead, in one place.
    public static let waiterVariables = ["AWS_MAX_ATTEMPTS", "AWS_POLL_DELAY_SECONDS", "AWS_TIMEOUT_SECONDS"]

    /// The environment Packer gets: the job's without its secrets
    /// (`JobContext.environmentForTools`), without Kiln's own settings
    /// (`KILN_*`, resolved by Kiln and passed as Packer variables) and
    /// without `waiterVariables`, with the credentials Kiln resolved
    /// (Packer's SDK knows neither GitLab's id_tokens nor every profile
    /// form), the region, and HashiCorp's version check turned off.
    public static func environment(
        job: [String: String], region: String, accessKeyID: String, secretAccessKey: String, sessionToken: String?
    ) -> [String: String] {
        var environment = job.filter { name, _ in !name.hasPrefix("KILN_") && !waiterVariables.contains(name) }
        environment["AWS_ACCESS_KEY_ID"] = accessKeyID
        environment["AWS_SECRET_ACCESS_KEY"] = secretAccessKey
        if let sessionToken {
            environment["AWS_SESSION_TOKEN"] = sessionToken
        } else {
            environment["AWS_SESSION_TOKEN"] = nil
        }
        // The credentials above win; a profile or role would only confuse the SDK.
        for name in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"] {
            environment[name] = nil
        }
        environment["AWS_REGION"] = region
        environment["AWS_DEFAULT_REGION"] = region
        environment["CHECKPOINT_DISABLE"] = "1"  // no call to checkpoint-api.hashicorp.com
        environment["PACKER_NO_COLOR"] = "1"
        return environment
    }

    /// `packer version`'s number (`Packer v1.6.6` -> [1, 6, 6]).
    public static func version(packer: String, runner: ProcessRunner, environment: [String: String]) throws -> [Int] {
        let result = try runner.run(Command(packer, ["version"], environment: environment), output: .capture)
        let text = String(decoding: result.standardOutput, as: UTF8.self)
        guard result.termination.succeeded,
            let word = text.split(whereSeparator: \.isWhitespace).first(where: {
                $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true
            })
        else {
            throw KilnError(
                .badConfiguration,
                "\(packer) version: not a Packer I understand (\(result.termination)): \(text.prefix(200))")
        }
        return word.dropFirst().split(separator: ".").map { Int($0.prefix(while: \.isNumber)) ?? 0 }
    }

    /// Writes the var file and runs the build.
    public func build(runner: ProcessRunner, log: LogWriter, varFile: String) throws -> Outcome {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(variables), to: varFile)
        var runner = runner
        // The whole output is parsed after the run (the artifact lines come
        // last); it is also streamed live into the log.
        runner.tailLimit = 8 << 20
        let command = Command(
            packer, ["build", "-machine-readable", "-color=false", "-var-file=\(varFile)", template],
            environment: environment, workingDirectory: workingDirectory)
        let result = try log.section(
            "kiln_packer", title: "packer build \((template as NSString).lastPathComponent)", collapsed: true
        ) {
            // GitLab's SIGTERM becomes SIGINT: Packer's signal to stop and clean up.
            try runner.run(command, forwarding: { _ in SIGINT })
        }
        return Outcome(output: PackerOutput(text: result.tail), result: result)
    }
}
