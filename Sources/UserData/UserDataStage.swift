import Foundation
import KilnArtifacts
import KilnCore

/// The flags of `kiln-userdata`.
public struct UserDataFlags: Sendable {
    public var environment: String?
    public var terraformOutputs: String?
    public init(environment: String? = nil, terraformOutputs: String? = nil) {
        self.environment = environment
        self.terraformOutputs = terraformOutputs
    }
}

/// kiln-userdata: renders one environment's user_init script.
public struct UserDataStage {
    /// EC2 takes at most 16 KB of user data, before base64 (RunInstances).
    public static let maximumBytes = 16_384
    /// A template is read up to this size (its rendering must fit in 16 KB,
    /// compressed; the template itself may hold comments).
    static let maximumTemplateBytes = 1 << 20

    public let context: StageContext
    public let environment: String
    public let terraform: TerraformOutputs

    /// Resolves the environment (`--environment`, else `CI_ENVIRONMENT_NAME`)
    /// and Terraform's outputs (`--terraform-outputs`, else `KILN_TERRAFORM_OUTPUTS`).
    public init(context: StageContext, flags: UserDataFlags) throws {
        self.context = context
        environment = try context.settings.environmentName(flag: flags.environment)
        terraform = try TerraformOutputs.resolve(flag: flags.terraformOutputs, settings: context.settings)
    }

    var projectDirectory: String { context.projectDirectory }

    @discardableResult
    public func run() throws -> UserDataResult {
        let image = try context.artifacts.read(ImageResult.self).payload
        let configuration = try UserDataConfiguration.load(context.settings.file, environment: environment)
        let values = Values(
            configuration: configuration, image: image, terraform: terraform, context: context, environment: environment
        )

        var used: [String: String] = [:]
        var rendered: [(name: String, format: UserDataFormat, text: String)] = []
        for part in configuration.parts {
            // In the repository, symbolic links followed (issue 13, item 2), and
            // read as a bounded regular file (a FIFO would never answer).
            let path = try ContainedPath.resolve(
                part.template, relativeTo: projectDirectory, within: [projectDirectory],
                origin: .configuration(
                    location: context.settings.file.path ?? "kiln.yml", key: "environments.\(environment).userdata"))
            let data: Data
            switch InputFile.read(path, limit: Self.maximumTemplateBytes) {
            case .success(let bytes):
                data = bytes
            case .failure(let failure) where failure.problem == .missing:
                throw KilnError.badConfiguration(
                    "\(part.template): template not found (from environments.\(environment).userdata)")
            case .failure(let failure):
                throw KilnError.badConfiguration(
                    "\(part.template) (from environments.\(environment).userdata): \(failure.problem.description)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw KilnError.badConfiguration(
                    "\(part.template): not UTF-8 text (from environments.\(environment).userdata)")
            }
            guard let format = part.format ?? UserDataFormat.detect(text), format != .multipart else {
                throw KilnError.badConfiguration(
                    """
                    \(part.template):1: cannot tell the format: \
                    start a script with '#!' or a cloud-config with '#cloud-config', or set format
                    """
                )
            }
            try TemplateSecrets.check(
                text, template: part.template, mask: context.log.secrets,
                readItAt: """
                    aws ssm get-parameter --with-decryption --name /\(image.application)/\(environment)/NAME \
                    --query Parameter.Value --output text
                    """)
            let template = try Template(parsing: text, source: part.template)
            var resolved: [String: TemplateValue] = [:]
            for name in template.variableNames {
                let (value, source) = try values.resolve(
                    name, template: part.template, line: Self.line(of: name, in: template))
                resolved[name] = value
                used[name] = source
            }
            let output: String
            switch format {
            case .shell:
                try ShellEscaper.checkTemplate(
                    text, hasPlaceholders: !template.variableNames.isEmpty, template: part.template)
                var escaper = ShellEscaper()
                output = try template.render(resolved, escaper: &escaper)
                try checkShell(output, template: part.template)
            case .cloudConfig:
                var escaper = YAMLEscaper()
                output = try template.render(resolved, escaper: &escaper)
                try CloudConfigCheck.check(output, template: part.template)
            case .multipart:
                fatalError("excluded above")
            }
            rendered.append(((part.template as NSString).lastPathComponent, format, output))
        }

        let multipart = configuration.format == .multipart || rendered.count > 1
        var bytes = Array((multipart ? Self.mime(rendered) : rendered[0].text).utf8)
        if configuration.gzip { bytes = try gzip(bytes) }
        guard bytes.count <= Self.maximumBytes else {
            throw KilnError.badConfiguration(
                """
                the user data for \(environment) is \(bytes.count) bytes, over EC2's limit of \(Self.maximumBytes)\
                \(configuration.gzip ? "" : " (set userdata.gzip: true to compress it; cloud-init unpacks it)")
                """)
        }
        let format = multipart ? UserDataFormat.multipart : rendered[0].format
        let fileName =
            """
            userdata-\(environment).\(format == .shell ? "sh" : format == .cloudConfig ? "yaml" : "mime")\
            \(configuration.gzip ? ".gz" : "")
            """
        let target = context.artifacts.path(fileName)
        try AtomicFile.write(Data(bytes), to: target)
        let sha256 = SHA256Digest.hex(of: bytes)
        let relative =
            target.hasPrefix(projectDirectory + "/") ? String(target.dropFirst(projectDirectory.count + 1)) : target
        let result = UserDataResult(
            environment: environment, format: format, gzip: configuration.gzip, path: relative, size: bytes.count,
            sha256: sha256, templates: configuration.parts.map(\.template),
            variables: used.keys.sorted().map { .init(name: $0, source: used[$0]!) }, amiID: image.amiID)
        var dotenv = Dotenv()
        dotenv.set("KILN_USERDATA_SHA256", sha256)
        try context.artifacts.write(
            result, fileName: UserDataResult.fileName(environment: environment), dotenv: dotenv,
            dotenvFileName: "userdata-\(environment).env")
        context.log.line(
            "userdata: \(environment): \(format.rawValue), \(bytes.count) bytes, sha256 \(sha256) -> \(relative)")
        return result
    }

    static func line(of name: String, in template: Template) -> Int {
        for case .placeholder(let placeholder, let line, _) in template.pieces where placeholder == name {
            return line
        }
        return 0
    }

    /// `sh -n` (or `bash -n` for a bash script): the template's own syntax
    /// errors are caught before an instance boots with them.
    private func checkShell(_ script: String, template: String) throws {
        let firstLine = script.prefix { $0 != "\n" }
        let shell = firstLine.contains("bash") ? "bash" : "sh"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kiln-userdata-\(UUID().uuidString).sh"
        ).path
        try AtomicFile.write(Data(script.utf8), to: file)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try context.runner.run(
            Command(shell, ["-n", file], environment: ["PATH": "/usr/bin:/bin"]), output: .capture)
        guard result.termination.succeeded else {
            let message = result.tail.replacingOccurrences(of: file, with: template)
            throw KilnError.badConfiguration("\(template): the rendered script is not valid \(shell): \(message)")
        }
    }

    private func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-userdata-\(UUID().uuidString)")
            .path
        try AtomicFile.write(Data(bytes), to: file)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // -n: no name or time in the header, so the same input gives the same bytes.
        let result = try context.runner.check(
            Command(
                "gzip", ["-n", "-9", "-c", file],
                environment: context.job.environmentForTools(masking: context.log.secrets)),
            what: "gzip", failure: .internalError, output: .capture)
        return Array(result.standardOutput)
    }

    /// cloud-init's MIME multipart (one part per template), with a boundary
    /// derived from the content so that the same parts give the same bytes.
    static func mime(_ parts: [(name: String, format: UserDataFormat, text: String)]) -> String {
        let digest = SHA256Digest.hex(
            of: Array(parts.map { $0.name + "\u{0}" + $0.text }.joined(separator: "\u{1}").utf8))
        let boundary = "===============kiln-\(digest.prefix(24))=="
        var out = "Content-Type: multipart/mixed; boundary=\"\(boundary)\"\nMIME-Version: 1.0\n\n"
        for part in parts {
            let type = part.format == .shell ? "text/x-shellscript" : "text/cloud-config"
            let encoding = part.text.unicodeScalars.allSatisfy(\.isASCII) ? "7bit" : "8bit"
            out +=
                """
                --\(boundary)\nContent-Type: \(type); charset=\"utf-8\"\nMIME-Version: 1.0\n\
                Content-Transfer-Encoding: \(encoding)\n\
                Content-Disposition: attachment; filename=\"\(part.name)\"\n\n
                """
            out += part.text.hasSuffix("\n") ? part.text : part.text + "\n"
        }
        return out + "--\(boundary)--\n"
    }
}

/// The values a template may name: `kiln.*` (the release and pipeline),
/// `tf.*` (any Terraform output), and the environment's declared variables.
struct Values {
    let configuration: UserDataConfiguration
    let image: ImageResult
    let terraform: TerraformOutputs
    let context: StageContext
    let environment: String

    var kiln: [String: String] {
        [
            "kiln.ami_id": image.amiID, "kiln.application": image.application, "kiln.version": image.applicationVersion,
            "kiln.commit": image.commit, "kiln.image_name": image.name, "kiln.region": image.region,
            "kiln.environment": environment, "kiln.pipeline_id": context.job.pipelineID ?? image.pipelineID ?? "",
        ]
    }

    func resolve(_ name: String, template: String, line: Int) throws -> (TemplateValue, String) {
        let at = "\(template):\(line)"
        func refuseSecret(_ what: String) -> KilnError {
            KilnError.badConfiguration(
                """
                \(at): {{ \(name) }} \(what): user data is readable by anyone who may describe the instance \
                (ec2:DescribeInstanceAttribute) and from the instance metadata. Store it in SSM Parameter Store \
                (SecureString) or Secrets Manager, and read it at boot, e.g. \
                aws ssm get-parameter --with-decryption --name /\(image.application)/\(environment)/\(name) \
                --query Parameter.Value --output text
                """)
        }
        func checked(_ value: TemplateValue, _ source: String) throws -> (TemplateValue, String) {
            if context.log.secrets.contains(secretIn: value.text) {
                throw refuseSecret("holds a masked secret of this job")
            }
            return (value, source)
        }
        if let value = kiln[name] { return try checked(.string(value), VariableSource.kiln.description) }
        if name.hasPrefix("tf.") {
            return try terraformValue(
                String(name.dropFirst(3)), at: at, name: name, refuse: refuseSecret, checked: checked)
        }
        guard let declared = configuration.variables.first(where: { $0.name == name }) else {
            let known =
                (kiln.keys.sorted() + configuration.variables.map(\.name).sorted()
                    + terraform.outputs.keys.sorted().map { "tf.\($0)" })
            throw KilnError.badConfiguration(
                "\(at): unknown variable '\(name)' (known: \(known.joined(separator: ", ")))")
        }
        switch declared.source {
        case .secret:
            throw refuseSecret("is marked secret in kiln.yml (\(declared.location))")
        case .literal:
            return try checked(.string(declared.literal ?? ""), VariableSource.literal.description)
        case .environment(let variable):
            if JobContext.secretVariableNames.contains(variable) {
                throw refuseSecret("comes from \(variable), a secret")
            }
            guard let value = context.job[variable] else {
                throw KilnError.badConfiguration(
                    "\(at): {{ \(name) }} comes from \(variable), which is not set (\(declared.location))")
            }
            return try checked(.string(value), declared.source.description)
        case .terraform(let output):
            return try terraformValue(output, at: at, name: name, refuse: refuseSecret, checked: checked)
        case .kiln:
            fatalError("kiln.* is never declared")
        }
    }

    private func terraformValue(
        _ output: String, at: String, name: String, refuse: (String) -> KilnError,
        checked: (TemplateValue, String) throws -> (TemplateValue, String)
    ) throws -> (TemplateValue, String) {
        guard let found = terraform.outputs[output] else {
            throw KilnError.badConfiguration(
                """
                \(at): {{ \(name) }}: \
                no Terraform output '\(output)'\(terraform.path.map { " in \($0)" } ?? " (give --terraform-outputs)")
                """
            )
        }
        if found.sensitive { throw refuse("is the sensitive Terraform output '\(output)'") }
        guard let value = found.value else {
            throw KilnError.badConfiguration(
                """
                \(at): {{ \(name) }}: Terraform output '\(output)' is of type \(found.typeDescription), \
                which cannot be rendered (only strings, numbers, booleans and lists of them)
                """
            )
        }
        return try checked(TemplateValue(value), VariableSource.terraform(output).description)
    }
}

/// What Kiln checks of a rendered cloud-config before cloud-init sees it:
/// the `#cloud-config` line, YAML that parses, a mapping at the top, and the
/// shapes of the keys most often written wrong.
enum CloudConfigCheck {
    static func check(_ text: String, template: String) throws {
        guard text.hasPrefix("#cloud-config") else {
            throw KilnError.badConfiguration("\(template):1: a cloud-config must start with '#cloud-config'")
        }
        let root: ConfigNode?
        do {
            root = try ConfigFile.parse(text, path: template).root
        } catch let error as KilnError {
            throw KilnError.badConfiguration("the rendered cloud-config is not valid: \(error.message)")
        }
        guard let root, case .mapping(let entries, _) = root else { return }
        let lists: Set<String> = [
            "runcmd", "bootcmd", "packages", "write_files", "users", "groups", "ssh_authorized_keys", "mounts",
        ]
        for (key, value) in entries where lists.contains(key) {
            guard case .sequence(let items, _) = value else {
                throw KilnError.badConfiguration(
                    "\(template):\(value.line): \(key) must be a list, found \(value.kind)")
            }
            if key == "write_files" {
                for item in items {
                    guard case .mapping = item, item["path"] != nil else {
                        throw KilnError.badConfiguration(
                            "\(template):\(item.line): each write_files entry needs a path")
                    }
                }
            }
        }
    }
}
