import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnHTTP

/// What `kiln-rotate` was asked to do.
public enum RotateAction: Sendable {
    case deploy(dryRun: Bool)
    case plan
    case rollback
}

/// The flags of `kiln-rotate`, each over its variable or kiln.yml.
public struct RotateFlags: Sendable {
    /// `--environment`, else `CI_ENVIRONMENT_NAME`.
    public var environment: String?
    /// `--terraform-outputs`, else `KILN_TERRAFORM_OUTPUTS`.
    public var terraformOutputs: String?
    /// Over `environments.<env>.rotate.strategy` and `.batch`.
    public var strategy: RotationStrategy?
    public var batch: BatchSize?
    /// `--no-rollback` makes this false: a failure leaves the group as it stands.
    public var rollbackOnFailure = true

    public init(
        environment: String? = nil, terraformOutputs: String? = nil, strategy: RotationStrategy? = nil,
        batch: BatchSize? = nil, rollbackOnFailure: Bool = true
    ) {
        self.environment = environment
        self.terraformOutputs = terraformOutputs
        self.strategy = strategy
        self.batch = batch
        self.rollbackOnFailure = rollbackOnFailure
    }
}

/// kiln-rotate: rolls an environment's group onto the release of image.json
/// and userdata-<env>.json.
public struct RotateStage {
    public let context: StageContext
    public let aws: AWSEnvironment
    public let environment: String
    public let terraform: TerraformOutputs
    public let flags: RotateFlags

    public init(context: StageContext, aws: AWSEnvironment, flags: RotateFlags) throws {
        self.context = context
        self.aws = aws
        self.flags = flags
        environment = try context.settings.environmentName(flag: flags.environment)
        terraform = try TerraformOutputs.resolve(flag: flags.terraformOutputs, settings: context.settings)
    }

    /// EC2 takes 16 KB of user data (RunInstances); a rendered file larger
    /// than that cannot be kiln-userdata's.
    static let maximumUserDataBytes = 16_384

    var runID: String {
        let pipeline = context.job.pipelineID ?? "local"
        let job = context.job.jobID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        return "\(pipeline)/\(job)"
    }

    @discardableResult
    public func run(_ action: RotateAction) throws -> RotationResult? {
        var configuration = try RotateConfiguration.load(
            context.settings.file, environment: environment, terraform: terraform.strings)
        if let strategy = flags.strategy { configuration.strategy = strategy }
        if let batch = flags.batch { configuration.batch = batch }
        let client = aws.client()
        let rotation = Rotation(
            client: client, http: aws.http, log: context.log, configuration: configuration, runID: runID,
            clock: context.clock, cancellation: context.runner.cancellation)
        let started = context.clock.now()

        if case .rollback = action {
            _ = try rotation.rollBackByHand()
            context.log.line("rotate: \(configuration.autoScalingGroup) is back on its previous release")
            return nil
        }

        let image = try context.artifacts.read(ImageResult.self).payload
        let userDataFile = UserDataResult.fileName(environment: environment)
        let userData = try context.artifacts.read(UserDataResult.self, fileName: userDataFile).payload
        // Inside the project or the artifacts folder, symbolic links followed:
        // the launch template must never get a host's file as user data.
        let userDataPath = try ContainedPath.resolve(
            userData.path, relativeTo: context.projectDirectory,
            within: [context.projectDirectory, context.artifacts.directory],
            origin: .artifact(file: context.artifacts.path(userDataFile), field: "path"))
        let bytes: Data
        switch InputFile.read(userDataPath, limit: Self.maximumUserDataBytes) {
        case .success(let data):
            bytes = data
        case .failure(let failure) where failure.problem == .missing:
            throw KilnError.badArtifact("\(userDataPath): the rendered user data that \(userDataFile) names is missing")
        case .failure(let failure):
            throw KilnError.badArtifact(
                "\(userDataPath) (field 'path' of \(userDataFile)): \(failure.problem.description);"
                    + " expected the rendered user data"
            )
        }
        guard SHA256Digest.hex(of: bytes) == userData.sha256 else {
            throw KilnError.badArtifact(
                "\(userDataPath): its SHA-256 is not the one \(userDataFile) records (changed since kiln-userdata?)")
        }
        guard userData.amiID == image.amiID else {
            throw KilnError.badArtifact(
                """
                \(userDataFile) was rendered for \(userData.amiID), \
                image.json names \(image.amiID): run kiln-userdata again
                """
            )
        }
        let release = ReleaseSpecification(
            application: image.application, version: image.applicationVersion, amiID: image.amiID,
            userData: Array(bytes), userDataSHA256: userData.sha256)

        switch action {
        case .plan, .deploy(dryRun: true):
            let plan = try rotation.planNow(release.digest)
            print(plan)
            try plan.check()
            return nil
        case .deploy(dryRun: false):
            var report: RotationReport
            var thrown: (any Error)?
            do {
                report = try context.log.section(
                    "kiln_rotate",
                    title:
                        """
                        Rotating \(configuration.autoScalingGroup) (\(environment)) \
                        onto \(image.application) \(image.applicationVersion)
                        """
                ) {
                    try rotation.deploy(release, rollbackOnFailure: flags.rollbackOnFailure)
                }
            } catch let rolledBack as RolledBack {
                report = rolledBack.report
                thrown = rolledBack
            } catch let left as LeftInPlace {
                report = left.report
                thrown = left
            } catch let interrupted as RotationInterrupted {
                // The report first (`artifacts: when: always` shows it), then the
                // exit code of what stopped the run: 75 for AWS past its
                // retries, so that the template's `retry: exit_codes` fires.
                report = interrupted.report
                thrown = interrupted.error
            }
            let result = RotationResult(
                environment: environment, autoScalingGroup: configuration.autoScalingGroup, release: release.digest,
                application: image.application, applicationVersion: image.applicationVersion, amiID: image.amiID,
                strategy: configuration.strategy, outcome: report.outcome, fromVersion: report.fromVersion,
                toVersion: report.toVersion, batches: report.batches, launched: report.launched,
                terminated: report.terminated,
                lowestHealthy: report.lowestHealthy == .max ? nil : report.lowestHealthy,
                largestGroup: report.largestGroup,
                failure: report.failure?.description,
                durationSeconds: (context.clock.since(started) * 10).rounded() / 10,
                calls: client.calls.snapshot, retirement: report.retirement)
            var dotenv = Dotenv()
            dotenv.set("KILN_RELEASE", release.digest)
            // GitLab's "dynamic environment URL": the job's own dotenv report
            // sets `environment:url: $KILN_ENVIRONMENT_URL` (the deploy component).
            if let url = configuration.environmentURL { dotenv.set("KILN_ENVIRONMENT_URL", url) }
            dotenv.set(
                "KILN_LAUNCH_TEMPLATE_VERSION",
                "\(report.outcome == .rolledBack ? report.fromVersion : report.toVersion)")
            // The picture beside the report, on every outcome that writes the report.
            let picture = RotationPicture(
                timeline: report.timeline,
                title: "kiln-rotate \(environment): \(report.outcome.rawValue)",
                subtitle:
                    """
                    \(configuration.autoScalingGroup), release \(release.digest) \
                    (\(image.application) \(image.applicationVersion)), \
                    version \(report.fromVersion) to \(report.toVersion)
                    """,
                failure: report.failure?.description)
            try AtomicFile.write(
                Data(picture.svg.utf8), to: context.artifacts.path(RotationPicture.fileName(environment: environment)))
            try context.artifacts.write(
                result, fileName: RotationResult.fileName(environment: environment), dotenv: dotenv,
                dotenvFileName: "rotation-\(environment).env")
            if let thrown { throw thrown }
            return result
        case .rollback:
            return nil
        }
    }
}

extension Rotation {
    /// The plan for the group as it stands now (one poll).
    public func planNow(_ release: String) throws -> RotationPlan {
        let (state, instances) = try GroupObserver(client: client, group: group).poll()
        let template = try launchTemplate(of: state)
        _ = try numericVersion(template)
        return plan(
            state: state, instances: instances, release: release, warmPool: try warmPool(),
            retirement: try retirementChoice())
    }
}
