import Foundation
import KilnArtifacts
import KilnCore

/// The flags of `kiln-bake`, given by the executable.
public struct BakeFlags: Sendable {
    public var role: BakeRole?
    public var template: String?
    public var packer: String?
    public var sourceAMI: String?
    public var channel: String?
    public init(
        role: BakeRole? = nil, template: String? = nil, packer: String? = nil, sourceAMI: String? = nil,
        channel: String? = nil
    ) {
        self.role = role
        self.template = template
        self.packer = packer
        self.sourceAMI = sourceAMI
        self.channel = channel
    }
}

/// The `bake` section of kiln.yml, with flags and variables over it.
public struct BakeConfiguration: Sendable {
    public static let canonicalOwner = "099720109477"
    public static let ubuntuNamePattern = "ubuntu/images/hvm-ssd*/ubuntu-*-amd64-server-*"
    public static let keys = ConfigSchema.bake.keys

    public var application: String
    public var role: BakeRole
    /// The template file or folder.
    public var template: PackerTemplate
    public var playbooks: String
    public var packer: String
    public var instanceType: String
    public var subnet: String?
    /// `ssh` (the default; Ansible runs over it) or `none` (no connection to
    /// the builder at all: the stand-in tests and the demo).
    public var communicator: String
    /// The project's own Packer variables (`bake.variables`).
    public var variables: [String: String]
    /// The regions the image is in: the bake region's entry (when listed)
    /// holds its KMS key for Packer, the others' for their copies.
    public var regions: [ImageRegion]
    /// Encrypt the image's volumes (`bake.encrypt_boot`, or a KMS key given
    /// for the bake region): Packer's `encrypt_boot`, and every copy.
    public var encryptBoot: Bool
    /// Days after this bake (a reuse counts) at which EC2 deprecates the
    /// image in every region (`bake.deprecate_after_days`); nil: never.
    public var deprecateAfterDays: Int?
    public var shareWith: [String]
    public var channel: String?
    public var keep: Int
    /// The base role's source: newest image of this owner and name.
    public var baseOwner: String
    public var baseNamePattern: String
    /// The app role's pinned base image (else the newest Kiln base image).
    public var pinnedSourceAMI: String?
    /// Where the pinned image was given, for messages.
    public var pinnedSourceLocation: String?

    public static func load(
        _ settings: Settings, flags: BakeFlags, projectDirectory: String, executablePath: String?
    ) throws -> BakeConfiguration {
        let file = settings.file
        if let section = file.node("bake") {
            _ = try file.mapping(section, "bake", allowed: keys)
            if let base = file.node("bake.base") {
                _ = try file.mapping(base, "bake.base", allowed: ConfigSchema.bake["base"]?.keys ?? [])
            }
        }
        // As every stage reads it (Settings.application); checked where it is needed.
        let application = try settings.application()?.value ?? ""
        func string(_ key: String, flag: (String, String?)? = nil, env: String? = nil) throws -> Resolved<String>? {
            try settings.resolve(key, flag: flag.map { (name: $0.0, value: $0.1) }, environment: env)
        }
        let role = try settings.require(
            "bake.role", parsedFlag: (name: "role", value: flags.role), environment: "KILN_BAKE_ROLE",
            default: BakeRole.app
        ).value

        // A path kiln.yml names lies in the repository, symbolic links
        // followed (issue 13, item 2); one given by a flag or a variable is
        // a person's or the CI settings' own choice and is taken as given.
        func inProject(_ given: Resolved<String>, key: String) throws -> String {
            if case .file = given.source {
                return try ContainedPath.resolve(
                    given.value, relativeTo: projectDirectory, within: [projectDirectory],
                    origin: .configuration(location: "\(given.source)", key: key))
            }
            return given.value.hasPrefix("/")
                ? given.value : (projectDirectory as NSString).appendingPathComponent(given.value)
        }
        let template: PackerTemplate
        if let given = try string("bake.template", flag: ("template", flags.template), env: "KILN_PACKER_TEMPLATE") {
            template = try PackerTemplate(
                path: try inProject(given, key: "bake.template"), origin: "\(given.value) (\(given.source))")
        } else if let found = Self.defaultTemplate(projectDirectory: projectDirectory, executablePath: executablePath) {
            template = try PackerTemplate(path: found, origin: found)
        } else {
            throw KilnError.badConfiguration(
                """
                no Packer template: none at packer/kiln.pkr.hcl in the project and Kiln's own was not found; \
                set bake.template in kiln.yml or --template
                """
            )
        }
        let playbooks =
            try string("bake.playbooks").map { try inProject($0, key: "bake.playbooks") }
            ?? (template.folder as NSString).appendingPathComponent("ansible")

        let communicator = try settings.require(
            "bake.communicator", environment: "KILN_PACKER_COMMUNICATOR", default: "ssh"
        ).value
        guard ["ssh", "winrm", "none"].contains(communicator) else {
            throw KilnError.badConfiguration("bake.communicator: expected ssh, winrm or none, got '\(communicator)'")
        }
        let keep = try settings.require("bake.keep", environment: "KILN_BAKE_KEEP", default: 5).value
        guard keep >= 1 else { throw KilnError.badConfiguration("bake.keep: keep at least 1 image, got \(keep)") }

        func list(_ key: String) throws -> [String] {
            guard let node = file.node(key) else { return [] }
            return try file.listOrOne(node, key).enumerated().map { try file.scalar($1, "\(key)[\($0)]") }
        }
        let regions = try ImageRegion.read(file)
        // EnableImageDeprecation takes at most 10 years ahead (EC2 API reference).
        let deprecateAfterDays: Resolved<Int>? = try settings.resolve(
            "bake.deprecate_after_days", environment: "KILN_DEPRECATE_AFTER_DAYS")
        if let days = deprecateAfterDays, !(1...3650).contains(days.value) {
            throw KilnError.badConfiguration(
                "bake.deprecate_after_days (\(days.source)): expected 1 to 3650 days, got \(days.value)")
        }
        let encryptBoot = try settings.require("bake.encrypt_boot", environment: "KILN_ENCRYPT_BOOT", default: false)
            .value
        let accounts = try list("bake.share_with")
        for (index, account) in accounts.enumerated() where !(account.count == 12 && account.allSatisfy(\.isNumber)) {
            let node = file.node("bake.share_with").map { file.listOrOne($0, "") }?[index]
            throw KilnError.badConfiguration(
                """
                \(node.map(file.location) ?? "kiln.yml"): bake.share_with[\(index)]: \
                expected a 12-digit AWS account id, got '\(account)'
                """
            )
        }
        let variables = try file.node("bake.variables").map { try file.stringMap($0, "bake.variables") } ?? [:]
        let reserved = Set(PackerRun.kilnVariables)
        if let clash = variables.keys.sorted().first(where: reserved.contains) {
            throw KilnError.badConfiguration("bake.variables.\(clash): Kiln sets this Packer variable itself")
        }
        // Packer would only warn (or say nothing, from 1.8.5), while the
        // variable changed the bake key: a typo is refused instead.
        if !variables.isEmpty {
            let declared = try TemplateVariables.declared(in: template)
            if let undeclared = variables.keys.sorted().first(where: { !declared.contains($0) }) {
                let node = file.node("bake.variables").flatMap { $0[undeclared] }
                let own = declared.subtracting(reserved).sorted()
                let listed = own.isEmpty ? "none beside Kiln's own" : own.joined(separator: ", ")
                throw KilnError.badConfiguration(
                    """
                    \(node.map(file.location) ?? "kiln.yml"): bake.variables.\(undeclared): the Packer template \
                    \(Self.relative(template.path, to: projectDirectory)) declares no variable "\(undeclared)" \
                    (its own: \(listed)); \
                    declare it (variable "\(undeclared)" { ... }) or remove it
                    """
                )
            }
        }
        let pinned = try string("bake.source_ami", flag: ("source-ami", flags.sourceAMI), env: "KILN_SOURCE_AMI")
        let channel = try string("bake.channel", flag: ("channel", flags.channel), env: "KILN_BAKE_CHANNEL")?.value
        if let channel, channel.isEmpty || !channel.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
            throw KilnError.badConfiguration("bake.channel: '\(channel)' must be letters, digits, '-', '_' or '.'")
        }
        let packer = try string("bake.packer", flag: ("packer", flags.packer), env: "KILN_PACKER")?.value ?? "packer"
        return BakeConfiguration(
            application: application, role: role, template: template, playbooks: playbooks, packer: packer,
            instanceType: try string("bake.instance_type", env: "KILN_INSTANCE_TYPE")?.value ?? "t3.micro",
            subnet: try string("bake.subnet", env: "KILN_SUBNET_ID")?.value,
            communicator: communicator, variables: variables, regions: regions, encryptBoot: encryptBoot,
            deprecateAfterDays: deprecateAfterDays?.value,
            shareWith: accounts, channel: channel, keep: keep,
            baseOwner: try string("bake.base.owner", env: "KILN_BASE_OWNER")?.value ?? canonicalOwner,
            baseNamePattern: try string("bake.base.name", env: "KILN_BASE_NAME")?.value ?? ubuntuNamePattern,
            pinnedSourceAMI: pinned?.value, pinnedSourceLocation: pinned.map { "\($0.source)" })
    }

    static func relative(_ path: String, to folder: String) -> String { BakeKey.relative(path, to: folder) }

    /// The bake region's KMS key, when `bake.regions` gives one.
    public func kmsKey(in region: String) -> String? { regions.first { $0.name == region }?.kmsKey }

    /// What the bake key holds of the encryption, in `home` and each of
    /// `regions`: nil when nothing is encrypted.
    public func encryptionKeyLine(home: String) -> String? {
        let names = [home] + regions.map(\.name).filter { $0 != home }
        guard names.contains(where: encrypts(in:)) else { return nil }
        return names.sorted().map { region in
            "\(region)=\(encrypts(in: region) ? kmsKey(in: region) ?? "default" : "none")"
        }.joined(separator: " ")
    }

    /// Whether the image in `region` is encrypted: everywhere when the bake
    /// encrypts its own, and wherever a KMS key is given.
    public func encrypts(in region: String) -> Bool { encryptBoot || kmsKey(in: region) != nil }

    /// `packer/kiln.pkr.hcl` in the project; else the one Kiln ships: in
    /// `../share/kiln/packer` beside the executable (an installed Kiln), or in
    /// the repository a development build lies in.
    static func defaultTemplate(projectDirectory: String, executablePath: String?) -> String? {
        var candidates = [(projectDirectory as NSString).appendingPathComponent("packer/kiln.pkr.hcl")]
        if let executablePath {
            var folder = ((executablePath as NSString).resolvingSymlinksInPath as NSString).deletingLastPathComponent
            candidates.append(
                ((folder as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
                    "share/kiln/packer/kiln.pkr.hcl"))
            while folder.count > 1 {
                candidates.append((folder as NSString).appendingPathComponent("packer/kiln.pkr.hcl"))
                folder = (folder as NSString).deletingLastPathComponent
            }
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }
}

/// One region of `bake.regions`: `[eu-west-1, us-east-1]`, or
/// `{eu-west-1: {kms_key: alias/images}, us-east-1: {}}`.
public struct ImageRegion: Sendable, Equatable {
    public var name: String
    /// The KMS key (key id, key ARN, alias name or alias ARN, as CopyImage
    /// and Packer's `kms_key_id` take it) the image's snapshots there are encrypted with.
    public var kmsKey: String?

    public init(name: String, kmsKey: String? = nil) {
        self.name = name
        self.kmsKey = kmsKey
    }

    static func read(_ file: ConfigFile) throws -> [ImageRegion] {
        guard let node = file.node("bake.regions") else { return [] }
        var regions: [ImageRegion] = []
        if case .mapping(let entries, _) = node {
            for (name, value) in entries {
                let keyPath = "bake.regions.\(name)"
                var kmsKey: String?
                switch value {
                case .mapping:
                    let fields = try file.mapping(value, keyPath, allowed: ["kms_key"])
                    kmsKey = try fields["kms_key"].map { try file.scalar($0, "\(keyPath).kms_key") }
                case .scalar(let text, _) where text.isEmpty || text == "null" || text == "~":
                    kmsKey = nil
                default:
                    throw KilnError.badConfiguration(
                        "\(file.location(value)): \(keyPath): expected a mapping such as {kms_key: alias/images}")
                }
                if let kmsKey, kmsKey.isEmpty {
                    throw KilnError.badConfiguration("\(file.location(value)): \(keyPath).kms_key: empty")
                }
                regions.append(ImageRegion(name: name, kmsKey: kmsKey))
            }
        } else {
            for (index, item) in file.listOrOne(node, "bake.regions").enumerated() {
                regions.append(ImageRegion(name: try file.scalar(item, "bake.regions[\(index)]")))
            }
        }
        return regions
    }
}
