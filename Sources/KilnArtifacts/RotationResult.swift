import Foundation
import KilnCore

/// How new instances replace old ones.
public enum RotationStrategy: String, Sendable, Codable, CaseIterable, SettingValue {
    /// Batches: launch a batch of new instances first, then retire as many old ones.
    case rolling
    /// One instance first, a soak, then rolling.
    case canary
    /// A full second set of new instances, then every old one goes.
    case blueGreen = "blue-green"

    public static var expected: String { "rolling, canary or blue-green" }
    public init?(settingText: String) { self.init(rawValue: settingText) }
}

/// How a rotation retires a batch's old instances: in bulk, a few calls a
/// batch whatever its size, chosen per group (issue 16, item 3).
public enum RetirementMethod: String, Sendable, Codable, CaseIterable {
    /// The group has a termination lifecycle hook: scale-in protection on the
    /// new instances, then the desired capacity lowered by the batch, so the
    /// group's own scale-in picks the old instances and honours the hook.
    case scaleIn = "scale-in"
    /// No termination hook: DetachInstances (desired lowered with them), then
    /// one EC2 TerminateInstances for the lot.
    case detachAndTerminate = "detach-and-terminate"
}

/// What happened to one instance the rotation launched.
public struct ReplacedInstance: Codable, Sendable, Equatable {
    public var instance: String
    public var firstSeenSeconds: Double
    public var healthySeconds: Double?

    public init(instance: String, firstSeenSeconds: Double, healthySeconds: Double? = nil) {
        self.instance = instance
        self.firstSeenSeconds = firstSeenSeconds
        self.healthySeconds = healthySeconds
    }
}

/// rotation-<env>.json: what a rotation did. Written by kiln-rotate.
public struct RotationResult: ArtifactPayload, Equatable {
    public static let schemaName = "rotation"
    public static let schemaVersion = 1

    public enum Outcome: String, Codable, Sendable {
        /// Every instance runs the release.
        case deployed
        /// Every instance already ran it; nothing was changed.
        case nothingToDo = "nothing-to-do"
        /// The release failed its health gate and the group is back on the release before it.
        case rolledBack = "rolled-back"
        /// The release failed with `--no-rollback`: the group is left as it stood, its journal kept.
        case left
        /// The run stopped part-way (AWS past its retries, a cancelled job): the journal is kept,
        /// and the next run finishes or rolls back what this one began.
        case interrupted
        /// The run stopped before the rotation began, and changed nothing: bad settings or
        /// artifacts, a group Kiln will not rotate (standby instances, a warm pool), an unknown
        /// alarm, another run under way, or AWS failing before the journal was written. `failure`
        /// says why; the exit code says whether a retry can help (75) or not (65, 78, ...).
        case refused
    }

    public var environment: String
    /// The fields below, up to `toVersion`, are absent only from a `refused` report, when the
    /// run stopped before it knew them (a kiln.yml that does not name the group, an image.json
    /// that cannot be read, a group whose launch template cannot be read).
    public var autoScalingGroup: String?
    public var release: String?
    public var application: String?
    public var applicationVersion: String?
    public var amiID: String?
    public var strategy: RotationStrategy?
    public var outcome: Outcome
    public var fromVersion: Int?
    public var toVersion: Int?
    public var batches: Int
    public var launched: [ReplacedInstance]
    public var terminated: [String]
    public var lowestHealthy: Int?
    public var largestGroup: Int
    public var failure: String?
    public var durationSeconds: Double
    /// AWS requests by `service:Action`, retries included.
    public var calls: [String: Int]
    /// How old instances were retired (absent when nothing was to do).
    public var retirement: RetirementMethod?

    public init(
        environment: String, autoScalingGroup: String?, release: String?, application: String?,
        applicationVersion: String?, amiID: String?, strategy: RotationStrategy?, outcome: Outcome, fromVersion: Int?,
        toVersion: Int?, batches: Int,
        launched: [ReplacedInstance], terminated: [String], lowestHealthy: Int?, largestGroup: Int, failure: String?,
        durationSeconds: Double, calls: [String: Int], retirement: RetirementMethod? = nil
    ) {
        self.environment = environment
        self.autoScalingGroup = autoScalingGroup
        self.release = release
        self.application = application
        self.applicationVersion = applicationVersion
        self.amiID = amiID
        self.strategy = strategy
        self.outcome = outcome
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.batches = batches
        self.launched = launched
        self.terminated = terminated
        self.lowestHealthy = lowestHealthy
        self.largestGroup = largestGroup
        self.failure = failure
        self.durationSeconds = durationSeconds
        self.calls = calls
        self.retirement = retirement
    }

    /// The file name of an environment's artifact.
    public static func fileName(environment: String) -> String { "rotation-\(environment).json" }
}
