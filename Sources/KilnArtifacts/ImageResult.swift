import Foundation
import KilnCore

/// `app` (every merge: the application on the newest base image) or `base`
/// (the scheduled pipeline: Ubuntu brought up to date).
public enum BakeRole: String, Sendable, Codable, SettingValue, CaseIterable {
    case app, base
    public static var expected: String { "app or base" }
    public init?(settingText: String) { self.init(rawValue: settingText.trimmingCharacters(in: .whitespaces)) }
}

/// image.json: the AMI a bake made or reused, and what is on it. Written by
/// kiln-bake; read by kiln-userdata and kiln-rotate.
public struct ImageResult: ArtifactPayload, Equatable {
    public static let schemaName = "image"
    public static let schemaVersion = 1

    public enum Outcome: String, Codable, Sendable {
        /// Packer made it.
        case baked
        /// An available AMI with the same bake key existed; nothing was launched.
        case reused
    }

    public var application: String
    /// The application's version (`version` is the envelope's).
    public var applicationVersion: String
    public var commit: String
    public var role: BakeRole
    public var name: String
    /// The region the bake ran in, and its AMI.
    public var region: String
    public var amiID: String
    /// Every region's AMI, the bake's own included.
    public var amis: [String: String]
    public var sourceAMI: String
    public var bakeKey: String
    public var outcome: Outcome
    public var packerSeconds: Double?
    public var pipelineID: String?
    /// The files the bake key covers: the Packer template's, the playbooks',
    /// the artifact (relative to the project when inside it). Optional, so
    /// that image.json written before it (issue 18) still reads.
    public var bakeInputs: [String]?

    public init(
        application: String, applicationVersion: String, commit: String, role: BakeRole, name: String, region: String,
        amiID: String, amis: [String: String], sourceAMI: String, bakeKey: String, outcome: Outcome,
        packerSeconds: Double?, pipelineID: String?, bakeInputs: [String]? = nil
    ) {
        self.application = application
        self.applicationVersion = applicationVersion
        self.commit = commit
        self.role = role
        self.name = name
        self.region = region
        self.amiID = amiID
        self.amis = amis
        self.sourceAMI = sourceAMI
        self.bakeKey = bakeKey
        self.outcome = outcome
        self.packerSeconds = packerSeconds
        self.pipelineID = pipelineID
        self.bakeInputs = bakeInputs
    }
}
