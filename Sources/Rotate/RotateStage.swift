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
    public let flags: RotateFlags
    /// Read when the run starts, not here: a bad one is reported in rotation-<env>.json like other settings.
    public var terraform: TerraformOutputs {
        get throws { try TerraformOutputs.resolve(flag: flags.terraformOutputs, settings: context.settings) }
    }

    public init(context: StageContext, aws: AWSEnvironment, flags: RotateFlags) throws {
        self.context = context
        self.aws = aws
        self.flags = flags
        environment = try context.settings.environmentName(flag: flags.environment)
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
        switch action {
        case .rollback:
            let (configuration, rotation) = try prepare(client: aws.client())
            _ = try rotation.rollBackByHand()
            context.log.line("rotate: \(configuration.autoScalingGroup) is back on its previous release")
            return nil
        case .plan, .deploy(dryRun: true):
            let (_, rotation) = try prepare(client: aws.client())
            let plan = try rotation.planNow(try readRelease().release.digest)
            print(plan)
            try plan.check()
            return nil
        case .deploy(dryRun: false):
            return try deploy()
        }
    }

    /// The settings and the rotation they make.
    private func prepare(client: AWSClient) throws -> (RotateConfiguration, Rotation) {
        var configuration = try RotateConfiguration.load(
            context.settings.file, environment: environment, terraform: try terraform.strings)
        if let strategy = flags.strategy { configuration.strategy = strategy }
        if let batch = flags.batch { configuration.batch = batch }
        let rotation = Rotation(
            client: client, http: aws.http, log: context.log, configuration: configuration, runID: runID,
            clock: context.clock, cancellation: context.runner.cancellation)
        return (configuration, rotation)
    }

    /// The release of image.json and userdata-<env>.json, checked against each other.
    private func readRelease() throws -> (image: ImageResult, release: ReleaseSpecification) {
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
        return (image, release)
    }

    /// What the run was asked to roll, as far as it got: a report written
    /// before the settings or the artifacts were read names less.
    private struct Subject {
        var configuration: RotateConfiguration?
        var image: ImageResult?
        var release: ReleaseSpecification?
        var keeper: TimelineKeeper?
    }

    /// This run's timeline in, the rotation's whole timeline out.
    typealias TimelineKeeper = @Sendable (_ timeline: RotationTimeline, _ toVersion: Int) throws -> RotationTimeline

    /// Keeps the picture's samples of this run in rotation-<env>.timeline.json
    /// beside those of the earlier runs of the same rotation (its group,
    /// release and launch template version), and gives back the whole.
    private func timelineKeeper(_ rotation: Rotation, release: String) -> TimelineKeeper {
        let store = context.artifacts
        let fileName = RotationTimelineRecord.fileName(environment: environment)
        let environment = environment
        let (group, run, started) = (rotation.group, rotation.runID, rotation.started)
        return { timeline, toVersion in
            var record = RotationTimelineRecord(
                environment: environment, autoScalingGroup: group, release: release, toVersion: toVersion, runs: [])
            if FileManager.default.fileExists(atPath: store.path(fileName)),
                let earlier = try? store.read(RotationTimelineRecord.self, fileName: fileName).payload,
                earlier.isSameRotation(as: record)
            {
                record.runs = earlier.runs
            }
            record.update(.init(run: run, startedAt: started, timeline: timeline))
            try store.write(record, fileName: fileName)
            return record.whole
        }
    }

    /// A rotation, and its report and picture on every outcome, a refusal
    /// before it began included (`artifacts: when: always` has them to show);
    /// then the error's own exit code is thrown.
    private func deploy() throws -> RotationResult {
        let client = aws.client()
        let started = context.clock.now()
        var subject = Subject()
        var report: RotationReport
        var thrown: (any Error)?
        // A refusal knows at most the launch template version the group is on.
        var refusedOn: Int?
        do {
            var (configuration, rotation) = try prepare(client: client)
            subject.configuration = configuration
            let (image, release) = try readRelease()
            subject.image = image
            subject.release = release
            let keeper = timelineKeeper(rotation, release: release.digest)
            let log = context.log
            rotation.keepTimeline = { timeline, toVersion in
                do {
                    _ = try keeper(timeline, toVersion)
                } catch {
                    log.warning("rotate: the picture's samples could not be kept: \(error)")
                }
            }
            subject.keeper = keeper
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
        } catch let refused as RotationRefused {
            report = .refused(refused.error)
            refusedOn = refused.fromVersion
            thrown = refused.error
        } catch {
            // The settings, image.json or userdata-<env>.json: read before anything changed.
            report = .refused(error)
            thrown = error
        }
        let result = try write(report, of: subject, refusedOn: refusedOn, client: client, started: started)
        if let thrown { throw thrown }
        return result
    }

    /// rotation-<env>.json, rotation-<env>.env and rotation-<env>.svg.
    private func write(
        _ report: RotationReport, of subject: Subject, refusedOn: Int?, client: AWSClient, started: Date
    ) throws -> RotationResult {
        let configuration = subject.configuration
        let image = subject.image
        let refused = report.outcome == .refused
        let versions: (from: Int?, to: Int?) = refused ? (refusedOn, refusedOn) : (report.fromVersion, report.toVersion)
        let result = RotationResult(
            environment: environment, autoScalingGroup: configuration?.autoScalingGroup,
            release: subject.release?.digest, application: image?.application,
            applicationVersion: image?.applicationVersion, amiID: image?.amiID, strategy: configuration?.strategy,
            outcome: report.outcome, fromVersion: versions.from, toVersion: versions.to, batches: report.batches,
            launched: report.launched, terminated: report.terminated,
            lowestHealthy: report.lowestHealthy == .max ? nil : report.lowestHealthy,
            largestGroup: report.largestGroup,
            failure: report.failure?.description,
            durationSeconds: (context.clock.since(started) * 10).rounded() / 10,
            calls: client.calls.snapshot, retirement: report.retirement)
        var dotenv = Dotenv()
        if let release = subject.release { dotenv.set("KILN_RELEASE", release.digest) }
        // GitLab's "dynamic environment URL": the job's own dotenv report
        // sets `environment:url: $KILN_ENVIRONMENT_URL` (the deploy component).
        if let url = configuration?.environmentURL { dotenv.set("KILN_ENVIRONMENT_URL", url) }
        let version = report.outcome == .rolledBack ? versions.from : versions.to
        if let version { dotenv.set("KILN_LAUNCH_TEMPLATE_VERSION", "\(version)") }
        // The picture beside the report, on every outcome that writes the
        // report; once the rotation began, with the earlier runs' samples.
        var timeline = report.timeline
        if !refused && report.outcome != .nothingToDo, let keeper = subject.keeper, let to = versions.to {
            do {
                timeline = try keeper(report.timeline, to)
            } catch {
                context.log.warning("rotate: the picture's samples could not be kept: \(error)")
            }
        }
        var about = [configuration?.autoScalingGroup ?? "no group read"]
        if let release = subject.release, let image {
            about.append("release \(release.digest) (\(image.application) \(image.applicationVersion))")
        }
        if !refused, let from = versions.from, let to = versions.to { about.append("version \(from) to \(to)") }
        let picture = RotationPicture(
            timeline: timeline, title: "kiln-rotate \(environment): \(report.outcome.rawValue)",
            subtitle: about.joined(separator: ", "), failure: report.failure?.description)
        try AtomicFile.write(
            Data(picture.svg.utf8), to: context.artifacts.path(RotationPicture.fileName(environment: environment)))
        try context.artifacts.write(
            result, fileName: RotationResult.fileName(environment: environment), dotenv: dotenv,
            dotenvFileName: "rotation-\(environment).env")
        return result
    }
}

extension RotationReport {
    /// A run that stopped before the rotation began: nothing changed.
    /// Its versions are not reported (the stage reports the one the group is on, when known).
    static func refused(_ error: any Error) -> RotationReport {
        var report = RotationReport(outcome: .refused, fromVersion: 0, toVersion: 0)
        report.failure = RotationFailure(instance: nil, check: "refused", answer: "\(error)")
        return report
    }
}

extension Rotation {
    /// The plan for the group as it stands now (one poll).
    public func planNow(_ release: String) throws -> RotationPlan {
        let (state, instances) = try GroupObserver(client: client, group: group).poll()
        let template = try launchTemplate(of: state)
        _ = try numericVersion(template)
        return plan(
            state: state, instances: instances, release: release, warmPool: warmPool(of: state),
            retirement: try retirementChoice())
    }
}
