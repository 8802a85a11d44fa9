import Bake
import Foundation
import KilnAWS
import KilnCore
import KilnHTTP
import UserData

/// rotation-<env>.json: what a rotation did.
public struct RotationResult: ArtifactPayload, Equatable {
    public static let schemaName = "rotation"
    public static let schemaVersion = 1

    public var environment: String
    public var autoScalingGroup: String
    public var release: String
    public var application: String
    public var applicationVersion: String
    public var amiID: String
    public var strategy: String
    /// `deployed`, `nothing-to-do` or `rolled-back`.
    public var outcome: String
    public var fromVersion: Int
    public var toVersion: Int
    public var batches: Int
    public var launched: [ReplacedInstance]
    public var terminated: [String]
    public var lowestHealthy: Int?
    public var largestGroup: Int
    public var failure: String?
    public var durationSeconds: Double
    /// AWS requests by `service:Action`, retries included.
    public var calls: [String: Int]
}

/// What `kiln-rotate` was asked to do.
public enum RotateAction: Sendable {
    case deploy(dryRun: Bool)
    case plan
    case rollback
}

/// kiln-rotate: rolls an environment's group onto the release of image.json
/// and userdata-<env>.json.
public struct RotateStage {
    public let context: StageContext
    public let environment: String
    public let terraform: TerraformOutputs
    public var rollbackOnFailure = true
    public var strategyOverride: RotationStrategy?
    public var batchOverride: BatchSize?

    public init(context: StageContext, environment: String, terraform: TerraformOutputs) {
        self.context = context
        self.environment = environment
        self.terraform = terraform
    }

    var runID: String {
        let pipeline = context.job.pipelineID ?? "local"
        let job = context.job.jobID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        return "\(pipeline)/\(job)"
    }

    public func run(_ action: RotateAction) throws -> RotationResult? {
        var configuration = try RotateConfiguration.load(
            context.settings.file, environment: environment,
            terraform: terraform.outputs.compactMapValues { output in if case .string(let text)? = output.value { return text } else { return nil } })
        if let strategyOverride { configuration.strategy = strategyOverride }
        if let batchOverride { configuration.batch = batchOverride }
        let http = HTTPClient(settings: HTTPSettings(job: context.job))
        let aws = try AWSEnvironment(job: context.job, http: http)
        let client = try aws.client(secrets: context.log.secrets, log: context.log)
        let rotation = Rotation(client: client, http: http, log: context.log, configuration: configuration, runID: runID)
        let started = Date()

        if case .rollback = action {
            do {
                _ = try rotation.rollBackByHand()
            } catch let rolledBack as RolledBack where rolledBack.failure.check == "by hand" {
                // Undone as asked: that is success for `kiln-rotate rollback`.
                context.log.line("rotate: \(configuration.autoScalingGroup) is back on its previous release")
            }
            return nil
        }

        let image = try context.artifacts.read(ImageResult.self).payload
        let userData = try context.artifacts.read(UserDataResult.self, fileName: "userdata-\(environment).json").payload
        let projectDirectory = context.job.projectDirectory ?? FileManager.default.currentDirectoryPath
        let userDataPath = userData.path.hasPrefix("/") ? userData.path : (projectDirectory as NSString).appendingPathComponent(userData.path)
        guard let bytes = FileManager.default.contents(atPath: userDataPath) else {
            throw KilnError.badArtifact("\(userDataPath): the rendered user data that userdata-\(environment).json names is missing")
        }
        guard SHA256Digest.hex(of: bytes) == userData.sha256 else {
            throw KilnError.badArtifact("\(userDataPath): its SHA-256 is not the one userdata-\(environment).json records (changed since kiln-userdata?)")
        }
        guard userData.amiID == image.amiID else {
            throw KilnError.badArtifact("userdata-\(environment).json was rendered for \(userData.amiID), image.json names \(image.amiID): run kiln-userdata again")
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
                report = try context.log.section("kiln_rotate", title: "Rotating \(configuration.autoScalingGroup) (\(environment)) onto \(image.application) \(image.applicationVersion)") {
                    try rotation.deploy(release, rollbackOnFailure: rollbackOnFailure)
                }
            } catch let rolledBack as RolledBack {
                report = rolledBack.report
                thrown = rolledBack
            }
            let result = RotationResult(
                environment: environment, autoScalingGroup: configuration.autoScalingGroup, release: release.digest,
                application: image.application, applicationVersion: image.applicationVersion, amiID: image.amiID,
                strategy: configuration.strategy.rawValue, outcome: report.outcome, fromVersion: report.fromVersion,
                toVersion: report.toVersion, batches: report.batches, launched: report.launched, terminated: report.terminated,
                lowestHealthy: report.lowestHealthy == .max ? nil : report.lowestHealthy, largestGroup: report.largestGroup,
                failure: report.failure?.description, durationSeconds: (Date().timeIntervalSince(started) * 10).rounded() / 10,
                calls: client.calls.snapshot)
            try context.artifacts.write(result, fileName: "rotation-\(environment).json")
            var dotenv = Dotenv()
            dotenv.set("KILN_RELEASE", release.digest)
            dotenv.set("KILN_LAUNCH_TEMPLATE_VERSION", "\(report.outcome == "rolled-back" ? report.fromVersion : report.toVersion)")
            try context.artifacts.writeDotenv(dotenv, fileName: "rotation-\(environment).env")
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
        return plan(state: state, instances: instances, release: release)
    }
}
