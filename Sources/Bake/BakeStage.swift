import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore

/// kiln-bake: decides what to bake from and whether to bake at all, runs
/// Packer, tags the image, copies and shares it, and writes image.json.
public struct BakeStage {
    public let context: StageContext
    public let aws: AWSEnvironment
    public let flags: BakeFlags
    /// Where the executable lies, to find the template Kiln ships.
    public let executablePath: String?

    public init(context: StageContext, aws: AWSEnvironment, flags: BakeFlags, executablePath: String?) {
        self.context = context
        self.aws = aws
        self.flags = flags
        self.executablePath = executablePath
    }

    var projectDirectory: String { context.projectDirectory }

    /// The day a base bake is for (its key changes daily).
    var baseDay: BakeDay { BakeDay(pipelineCreatedAt: context.job["CI_PIPELINE_CREATED_AT"], now: context.clock.now()) }

    /// What the image will hold: the application's artifact (app), or nothing but the base work (base).
    struct Inputs {
        var application: String
        var version: String
        var commit: String
        var artifactPath: String?
        var artifactSHA256: String?
    }

    @discardableResult
    public func run() throws -> ImageResult {
        let log = context.log
        let configuration = try BakeConfiguration.load(
            context.settings, flags: flags, projectDirectory: projectDirectory, executablePath: executablePath)
        let inputs = try readInputs(configuration)
        let client = aws.client()
        let images = ImageCatalog(client: client)

        let source = try SourceImage.resolve(configuration, images: images)
        log.line(
            """
            bake: \(inputs.application) \(configuration.role.rawValue) \
            \(inputs.version) from \(source.id) (\(source.reason))
            """
        )
        let key = try BakeKey(
            role: configuration.role, application: inputs.application, sourceAMI: source.id,
            artifactSHA256: inputs.artifactSHA256, artifactPath: inputs.artifactPath, template: configuration.template,
            playbooksPath: configuration.playbooks,
            variables: configuration.variables, instanceType: configuration.instanceType,
            communicator: configuration.communicator, day: configuration.role == .base ? baseDay : nil,
            projectDirectory: projectDirectory)
        log.line("bake key: \(key.value)\(configuration.role == .base ? " (base image of \(baseDay.text), UTC)" : "")")

        var result: ImageResult
        if let existing = try images.newest(withBakeKey: key.value) {
            log.line(
                """
                reused: \(existing.id) (\(existing.name ?? "no name")) already has bake key \(key.value); \
                nothing is launched
                """
            )
            result = ImageResult(
                application: inputs.application, applicationVersion: existing.tags[KilnTag.version] ?? inputs.version,
                commit: existing.tags[KilnTag.commit] ?? inputs.commit, role: configuration.role,
                name: existing.name ?? existing.id, region: client.region, amiID: existing.id,
                amis: [client.region: existing.id],
                sourceAMI: existing.tags[KilnTag.sourceAMI] ?? source.id, bakeKey: key.value, outcome: .reused,
                packerSeconds: nil, pipelineID: context.job.pipelineID, bakeInputs: key.files)
        } else {
            result = try bake(
                configuration, inputs: inputs, source: source.id, key: key, client: client, images: images)
        }
        // Copies, shares and the channel: also on reuse, so that a re-run
        // finishes what a killed run left.
        let tags = try images.tags(of: result.amiID)
        result.amis = try ImageDistribution(log: log, images: images, aws: aws, clock: context.clock).distribute(
            imageID: result.amiID, name: result.name, tags: tags, regions: configuration.regions,
            accounts: configuration.shareWith)
        if let channel = configuration.channel {
            let parameter = "/kiln/\(inputs.application)/\(configuration.role.rawValue)/\(channel)"
            for (region, ami) in result.amis.sorted(by: { $0.key < $1.key }) {
                let regional = region == client.region ? client : aws.client(region: region)
                let version = try regional.putParameter(
                    parameter, value: ami, overwrite: true, description: "kiln-bake: \(result.name)")
                log.line("channel: \(parameter) = \(ami) in \(region) (version \(version))")
            }
        }
        try write(result)
        log.line("image: \(result.amiID) \(result.name) (\(result.outcome))")
        return result
    }

    func readInputs(_ configuration: BakeConfiguration) throws -> Inputs {
        switch configuration.role {
        case .base:
            guard !configuration.application.isEmpty else {
                throw KilnError.badConfiguration(
                    "no application name: set application in kiln.yml (or run in a job, where CI_PROJECT_NAME names it)"
                )
            }
            // A base image has no release of its own: it is named by its day.
            return Inputs(
                application: configuration.application, version: baseDay.compact,
                commit: context.job.commitSHA ?? "", artifactPath: nil, artifactSHA256: nil)
        case .app:
            let file = context.artifacts.path("build.json")
            let build = try context.artifacts.read(BuildResult.self).payload
            guard build.outcome == .passed, let artifact = build.artifact else {
                throw KilnError.badArtifact(
                    """
                    \(file): the build's outcome is '\(build.outcome.rawValue)' and it has no artifact; \
                    there is nothing to bake
                    """
                )
            }
            // Inside the project or the artifacts folder, symbolic links
            // followed: build.json must not name /etc/passwd for baking.
            let path = try ContainedPath.resolve(
                artifact.path, relativeTo: projectDirectory, within: [projectDirectory, context.artifacts.directory],
                origin: .artifact(file: file, field: "artifact.path"))
            switch InputFile.kind(of: path) {
            case .none:
                throw KilnError.badArtifact(
                    """
                    \(file): artifact.path '\(artifact.path)' does not exist (looked at \(path)); \
                    was it passed on as a job artifact?
                    """
                )
            case .some(let kind) where kind != "a file":
                throw KilnError.badArtifact(
                    "\(file): field 'artifact.path': \(path) is \(kind), not the file the build packed")
            default:
                break
            }
            let digest = try SHA256Digest.hex(ofFileAt: path)
            guard digest == artifact.sha256.lowercased() else {
                throw KilnError.badArtifact(
                    """
                    \(file): artifact.sha256 is \(artifact.sha256) but \(artifact.path) has SHA-256 \(digest); \
                    the artifact changed after the build
                    """
                )
            }
            return Inputs(
                application: build.application, version: build.applicationVersion, commit: build.commit,
                artifactPath: path, artifactSHA256: digest)
        }
    }

    /// The name AWS shows: `<app>-<role>-<version>-<UTC time>`, in the
    /// characters AMI names allow (letters, digits, `()[] ./-'@_`), at most 128.
    static func imageName(application: String, role: BakeRole, version: String, time: Date) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789()[] ./-'@_")
        let raw = "\(application)-\(role.rawValue)-\(version)-\(timestamp(time))"
        return String(String(raw.map { allowed.contains($0) ? $0 : "_" }).suffix(128))
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    func bake(
        _ configuration: BakeConfiguration, inputs: Inputs, source: String, key: BakeKey, client: AWSClient,
        images: ImageCatalog
    ) throws -> ImageResult {
        let log = context.log
        let started = context.clock.now()
        let name = Self.imageName(
            application: inputs.application, role: configuration.role, version: inputs.version, time: started)
        let builtAt = ISO8601DateFormatter()
        builtAt.formatOptions = [.withInternetDateTime]
        let tags = [
            "Name": name,
            KilnTag.application: inputs.application,
            KilnTag.role: configuration.role.rawValue,
            KilnTag.version: inputs.version,
            KilnTag.commit: inputs.commit,
            KilnTag.pipeline: context.job.pipelineID ?? "",
            KilnTag.bakeKey: key.value,
            KilnTag.sourceAMI: source,
            KilnTag.builtAt: builtAt.string(from: started),
        ]
        // Only when AWS_ENDPOINT_URL(_EC2) points elsewhere (a stand-in): Packer's
        // SDK does not read those variables itself.
        let ec2Endpoint =
            context.job["AWS_ENDPOINT_URL_EC2"] ?? context.job["AWS_ENDPOINT_URL"] != nil
            ? client.endpoints.url(for: .ec2) : ""
        var variables: [String: PackerRun.VariableValue] = configuration.variables.mapValues { .string($0) }
        variables.merge([
            "source_ami": .string(source), "ami_name": .string(name), "region": .string(client.region),
            "instance_type": .string(configuration.instanceType), "subnet_id": .string(configuration.subnet ?? ""),
            "tags": .map(tags), "role": .string(configuration.role.rawValue),
            "application": .string(inputs.application),
            "application_version": .string(inputs.version),
            "artifact": .string(inputs.artifactPath ?? ""), "artifact_sha256": .string(inputs.artifactSHA256 ?? ""),
            "playbooks_dir": .string(configuration.playbooks), "communicator": .string(configuration.communicator),
            "ec2_endpoint": .string(ec2Endpoint),
        ]) { $1 }
        // Only what a loopback world needs, and only where the project's own variables do not say otherwise.
        variables.merge(PackerRun.loopbackVariables(ec2Endpoint: ec2Endpoint)) { own, _ in own }

        let credentials = try client.credentials.resolved().credentials
        let scratch = try Self.makeScratchFolder(temporary: context.job["TMPDIR"] ?? NSTemporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var environment = PackerRun.environment(
            job: context.job.environmentForTools(masking: log.secrets), region: client.region,
            accessKeyID: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken)
        // Packer talks to its plugins over Unix sockets in TMPDIR, whose
        // paths may hold 107 bytes (unix(7)): a deep TMPDIR makes it crash.
        environment["TMPDIR"] = scratch
        let plainRun = PackerRun(
            packer: configuration.packer, template: configuration.template.path, variables: variables,
            environment: environment, workingDirectory: configuration.template.folder)
        let run = configuration.template.isFolder ? plainRun : try withPluginsIfSupported(plainRun, scratch: scratch)

        let outcome: PackerRun.Outcome
        do {
            outcome = try run.build(runner: context.runner, log: log, varFile: "\(scratch)/kiln.pkrvars.json")
        } catch let cancelled as CancelledBySignal {
            // Packer had its SIGINT and has cleaned up; make sure of it.
            images.removeLeftovers(named: name, log: log)
            throw cancelled
        }
        let seconds = (outcome.result.duration * 10).rounded() / 10
        guard outcome.result.termination.succeeded else {
            images.removeLeftovers(named: name, log: log)
            let message =
                outcome.output.failureMessage ?? "no error line; last output:\n\(outcome.result.tail.suffix(2000))"
            throw KilnError(
                PackerFailureKind.exitStatus(for: message),
                """
                packer build failed (\(outcome.result.termination)) after \(LogWriter.formatDuration(seconds)); \
                no image was kept:\n\(message)
                """
            )
        }
        let amiID: String
        do {
            amiID = try outcome.output.image(in: client.region)
        } catch {
            images.removeLeftovers(named: name, log: log)
            throw error
        }
        log.line("packer: \(amiID) in \(client.region) after \(LogWriter.formatDuration(seconds))")
        // Whatever the template does with `tags`, the image and its snapshots get Kiln's.
        try images.tag(imageID: amiID, tags: tags)
        return ImageResult(
            application: inputs.application, applicationVersion: inputs.version, commit: inputs.commit,
            role: configuration.role, name: name, region: client.region, amiID: amiID, amis: [client.region: amiID],
            sourceAMI: source, bakeKey: key.value, outcome: .baked, packerSeconds: seconds,
            pipelineID: context.job.pipelineID, bakeInputs: key.files)
    }

    /// A folder of this bake's own (the var file, Packer's TMPDIR), in the
    /// job's TMPDIR when its path is short enough for Packer's sockets, else
    /// in /tmp. Removed when the bake ends.
    static func makeScratchFolder(temporary: String) throws -> String {
        let base = temporary.utf8.count <= 48 ? temporary : "/tmp"
        var template = Array(((base as NSString).appendingPathComponent("kiln-bake-XXXXXX")).utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemCallError("create a scratch folder in \(base)", errno: errno)
        }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Packer 1.7+ wants the amazon plugin declared (and `packer init`):
    /// `plugins.pkr.hcl` beside the template is added, in a folder of its own
    /// with the template, only for such a Packer; 1.6.6 builds the file alone.
    func withPluginsIfSupported(_ run: PackerRun, scratch: String) throws -> PackerRun {
        let plugins = ((run.template as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
            "plugins.pkr.hcl")
        guard FileManager.default.fileExists(atPath: plugins) else { return run }
        let version = try PackerRun.version(packer: run.packer, runner: context.runner, environment: run.environment)
        guard version.lexicographicallyPrecedes([1, 7]) == false else { return run }
        let folder = "\(scratch)/template"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(folder)/kiln.pkr.hcl", withDestinationPath: run.template)
        try FileManager.default.createSymbolicLink(atPath: "\(folder)/plugins.pkr.hcl", withDestinationPath: plugins)
        _ = try context.log.section("kiln_packer_init", title: "packer init", collapsed: true) {
            try context.runner.check(
                Command(run.packer, ["init", folder], environment: run.environment), what: "packer init",
                failure: .serviceUnavailable)
        }
        var withPlugins = run
        withPlugins.template = folder
        return withPlugins
    }

    func write(_ result: ImageResult) throws {
        var dotenv = Dotenv()
        dotenv.set("KILN_AMI_ID", result.amiID)
        dotenv.set("KILN_IMAGE_NAME", result.name)
        try context.artifacts.write(result, dotenv: dotenv, dotenvFileName: "image.env")
    }
}
